"""torchvision's deeplabv3_resnet101 against deeplab_jax's same architecture, same run, same device.

  python -m deeplab_jax.benchmarks.torch_step --modes=inference --batch=1 --size=513 --steps=5 \\
      --warmup=1                                                                          # CPU
  python -m deeplab_jax.benchmarks.torch_step --modes=train,inference --batch=16 --size=513 \\
      --dtype=bfloat16 --steps=20 --warmup=3                                              # GPU

Ours is configs/pretrained/torchvision_deeplabv3.py, torchvision's model (tests/models/test_peers.py
checks the parameter counts agree): ResNet-101, output stride 8, torchvision dilation style, no
multi-grid, 3x3 conv after ASPP, ASPP dropout 0.5, no aux head. torchvision runs channels_last; on CUDA
under bf16 autocast when --dtype=bfloat16 (AMP), on CPU in float32. A train step on both sides is
forward, softmax cross-entropy (ignore 255), backward and SGD with momentum 0.9 and weight decay 1e-4.
The two sides alternate step by step (step.interleaved_times), so load changes hit both alike;
the figure to read is the ratio of medians, ours / torchvision's images/s (> 1: ours is faster).
"""
import statistics
from typing import Any, Callable

from absl import app, flags

from deeplab_jax import peers
from deeplab_jax.benchmarks import step

FLAGS = flags.FLAGS
_NUM_CLASSES = 21


def torchvision_config(dtype: str) -> Any:
  """configs/pretrained/torchvision_deeplabv3.py:resnet101 with the aux head off."""
  from configs.pretrained import torchvision_deeplabv3
  config = torchvision_deeplabv3.get_config('resnet101')
  config.model.aux_head, config.model.dtype = False, dtype
  config.data.num_classes = _NUM_CLASSES
  return config


def import_torchvision():
  """torch and torchvision.models.segmentation, via the shared peers' tv_shim."""
  peers.add_to_path()
  import tv_shim  # noqa: F401  (makes torchvision importable in this environment)

  import torch
  from torchvision.models import segmentation
  return torch, segmentation


def torch_runners(batch: dict, dtype: str) -> tuple[dict[str, Callable[[], None]], str]:
  """{'train': one SGD step, 'inference': one forward} of torchvision's model, each synchronised."""
  torch, segmentation = import_torchvision()
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  amp = device.type == 'cuda' and dtype == 'bfloat16'
  model = segmentation.deeplabv3_resnet101(weights=None, weights_backbone=None,
                                           num_classes=_NUM_CLASSES, aux_loss=False)
  model = model.to(device, memory_format=torch.channels_last)
  images = torch.from_numpy(batch['image']).permute(0, 3, 1, 2).to(device)
  images = images.contiguous(memory_format=torch.channels_last)
  labels = torch.from_numpy(batch['label']).long().to(device)
  sgd = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
  loss_fn = torch.nn.CrossEntropyLoss(ignore_index=255)
  sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)

  def train():
    model.train()
    sgd.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
      loss = loss_fn(model(images)['out'].float(), labels)
    loss.backward()
    sgd.step()
    sync()

  def inference():
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
      model(images)['out']
    sync()

  where = (f'torch {torch.__version__} on {device}, {"bf16 autocast" if amp else "float32"}, '
           f'channels_last, {torch.get_num_threads()} intra-op threads')
  return {'train': train, 'inference': inference}, where


def compare(modes: list[str], batch_size: int, size: int, steps: int, warmup: int,
            dtype: str) -> list[dict]:
  """Per mode: both sides' step times, interleaved; ours / theirs images/s."""
  import jax
  config = torchvision_config(dtype)
  batch = step.fake_batch(batch_size, size, _NUM_CLASSES)
  theirs, where = torch_runners(batch, dtype)
  ours_makers = {'train': step.train_runner, 'inference': step.inference_runner}
  print(f'ours: jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), '
        f'{dtype}; theirs: {where}; batch {batch_size}, {size}x{size}', flush=True)
  rows = []
  for mode in modes:
    ours, compile_s, _ = ours_makers[mode](config, batch)
    times = step.interleaved_times({'deeplab_jax': ours, 'torchvision': theirs[mode]}, steps, warmup)
    medians = {name: statistics.median(t) for name, t in times.items()}
    rows.append({'mode': mode, 'compile_s': compile_s, 'times': times, 'medians': medians,
                 'ratio': medians['torchvision'] / medians['deeplab_jax']})
  return rows


def format_rows(rows: list[dict], batch_size: int) -> str:
  lines = []
  for r in rows:
    ours, theirs = r['medians']['deeplab_jax'], r['medians']['torchvision']
    lines.append(f"{r['mode']:>9}: deeplab_jax {batch_size / ours:.3f} images/s (median {ours:.3f} s, "
                 f"compile {r['compile_s']:.1f} s apart), torchvision {batch_size / theirs:.3f} images/s "
                 f"(median {theirs:.3f} s); ours / torchvision = {r['ratio']:.2f}x")
    for name, t in r['times'].items():
      lines.append(f"           {name} step times (s): {' '.join(f'{x:.3f}' for x in t)}")
  return '\n'.join(lines)


def main(argv):
  del argv
  step.check_modes(FLAGS.modes)
  rows = compare(FLAGS.modes, FLAGS.batch, FLAGS.size, FLAGS.steps, FLAGS.warmup, FLAGS.dtype or 'float32')
  print(format_rows(rows, FLAGS.batch))


if __name__ == '__main__':
  # step's flags: --batch, --size, --steps, --warmup, --dtype and --modes; its --config is unused here,
  # the model being `torchvision_config`.
  step.define_flags()
  app.run(main)
