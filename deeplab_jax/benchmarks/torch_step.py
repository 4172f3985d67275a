"""Our train step and inference against the PyTorch peer of the same architecture, same run, same device.

  python -m deeplab_jax.benchmarks.torch_step --arch=resnet50 --modes=train,inference --batch=4 \
      --size=208 --steps=5 --warmup=1                                                     # CPU
  python -m deeplab_jax.benchmarks.torch_step --arch=resnet101 --modes=train,inference --batch=16 \
      --size=513 --dtype=bfloat16 --steps=20 --warmup=3                                   # GPU

--arch picks the pair (ours from configs/pretrained/, whose parameter counts tests/models/test_peers.py
checks against the peer's):
  resnet50, resnet101, mobilenet_v3_large  torchvision deeplabv3_<arch> (torchvision_deeplabv3.py)
  smp_resnet101                            segmentation_models_pytorch DeepLabV3Plus, resnet101 encoder
                                           (smp_deeplabv3plus.py)
  smp_xception65                           smp DeepLabV3Plus with timm's xception65 encoder, against our
                                           v3+ Xception-65 (configs/v3plus_voc.py; the same backbone,
                                           smp's decoder differs in detail)
No aux heads. torchvision/smp run channels_last; on CUDA under bf16 autocast when --dtype=bfloat16
(AMP), on CPU in float32. A train step on both sides is forward, softmax cross-entropy (ignore 255),
backward and SGD with momentum 0.9 and weight decay 1e-4. The two sides alternate step by step
(step.interleaved_times), so load changes hit both alike; with --settle=1 (the default) each timed
step comes right after an untimed step of the same side, as in a run of that side alone. The figure to
read is the ratio of medians, ours / theirs images/s (> 1: ours is faster).
"""
import dataclasses
import statistics
from typing import Any, Callable

from absl import app, flags

from deeplab_jax import peers
from deeplab_jax.benchmarks import step

FLAGS = flags.FLAGS


@dataclasses.dataclass(frozen=True)
class Arch:
  """One architecture both sides have: our config and the peer's model."""
  config: Callable[[], Any]  # () -> our config (num_classes and dtype set by the caller)
  peer: Callable[[Any, int], Any]  # (imported peer modules, num_classes) -> torch module
  peer_name: str


def _torchvision_config(arch: str):
  from configs.pretrained import torchvision_deeplabv3
  return torchvision_deeplabv3.get_config(arch)


def _smp_config():
  from configs.pretrained import smp_deeplabv3plus
  return smp_deeplabv3plus.get_config('resnet101')


def _xception_config():
  from configs import v3plus_voc
  return v3plus_voc.get_config()


def _torchvision_peer(arch: str):
  def build(modules, num_classes):
    return getattr(modules.segmentation, f'deeplabv3_{arch}')(weights=None, weights_backbone=None,
                                                              num_classes=num_classes, aux_loss=False)
  return build


def _smp_peer(encoder: str):
  def build(modules, num_classes):
    return modules.smp.DeepLabV3Plus(encoder_name=encoder, encoder_weights=None, classes=num_classes)
  return build


ARCHS = {
    **{a: Arch(lambda a=a: _torchvision_config(a), _torchvision_peer(a), f'torchvision deeplabv3_{a}')
       for a in ('resnet50', 'resnet101', 'mobilenet_v3_large')},
    'smp_resnet101': Arch(_smp_config, _smp_peer('resnet101'), 'smp DeepLabV3Plus(resnet101)'),
    'smp_xception65': Arch(_xception_config, _smp_peer('tu-xception65'),
                           'smp DeepLabV3Plus(tu-xception65)'),
}


def define_flags() -> None:
  """step's flags (--batch, --size, --steps, --warmup, --dtype, --modes) and the pair to compare."""
  step.define_flags()
  flags.DEFINE_enum('arch', 'resnet101', list(ARCHS), 'Which architecture pair.')
  flags.DEFINE_integer('num_classes', 21, 'Classes of both models.')
  flags.DEFINE_integer('settle', 1, 'Untimed steps of a side just before each of its timed steps, so '
                       'that each timed step follows one of its own kind, as in a run of that side '
                       'alone (a step right after the other side\'s can be much slower on CPU). 0: '
                       'plain alternation.')
  flags.DEFINE_bool('with_library_convs', False, 'Also time ours with the library lowerings of depthwise '
                    "and 1x1 convs (model.depthwise_impl='grouped', pointwise_impl='conv'), interleaved: "
                    'the before/after of the fast lowerings in one run.')


def our_config(arch: str, dtype: str, num_classes: int) -> Any:
  """Our side of `arch`, aux head off."""
  config = ARCHS[arch].config()
  config.model.aux_head, config.model.dtype = False, dtype
  config.data.num_classes = num_classes
  return config


def import_peers():
  """A namespace of torch, torchvision.models.segmentation and (when installed) smp, via tv_shim."""
  import types
  peers.add_to_path()
  torch = peers.import_torch()
  import tv_shim  # noqa: F401  (makes torchvision importable in this environment)

  from torchvision.models import segmentation
  try:
    import segmentation_models_pytorch as smp
  except ImportError:
    smp = None
  return types.SimpleNamespace(torch=torch, segmentation=segmentation, smp=smp)


def _logits(outputs):
  return outputs['out'] if isinstance(outputs, dict) else outputs  # torchvision: a dict; smp: logits


def torch_runners(arch: str, batch: dict, dtype: str,
                  num_classes: int) -> tuple[dict[str, Callable[[], None]], str]:
  """{'train': one SGD step, 'inference': one forward} of the peer's model, each synchronised."""
  modules = import_peers()
  torch = modules.torch
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  amp = device.type == 'cuda' and dtype == 'bfloat16'
  model = ARCHS[arch].peer(modules, num_classes)
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
      loss = loss_fn(_logits(model(images)).float(), labels)
    loss.backward()
    sgd.step()
    sync()

  def inference():
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
      _logits(model(images))
    sync()

  where = (f'torch {torch.__version__} on {device}, {"bf16 autocast" if amp else "float32"}, '
           f'channels_last, {torch.get_num_threads()} intra-op threads')
  return {'train': train, 'inference': inference}, where


def compare(modes: list[str], batch_size: int, size: int, steps: int, warmup: int, dtype: str,
            arch: str = 'resnet101', num_classes: int = 21, with_library_convs: bool = False,
            settle: int = 1) -> list[dict]:
  """Per mode: both sides' step times, interleaved; ours / theirs images/s.

  settle: untimed steps of a side before each of its timed ones (step.interleaved_times).

  with_library_convs adds 'deeplab_jax_library': ours with the library's depthwise and 1x1 convs.
  """
  import jax
  config = our_config(arch, dtype, num_classes)
  library = config.copy_and_resolve_references()
  library.model.depthwise_impl, library.model.pointwise_impl = 'grouped', 'conv'
  batch = step.fake_batch(batch_size, size, num_classes)
  theirs, where = torch_runners(arch, batch, dtype, num_classes)
  ours_makers = {'train': step.train_runner, 'inference': step.inference_runner}
  print(f'{arch}: ours: jax {jax.__version__} on {jax.devices()[0].device_kind} '
        f'({jax.default_backend()}), {dtype}; theirs: {ARCHS[arch].peer_name}, {where}; batch '
        f'{batch_size}, {size}x{size}', flush=True)
  rows = []
  for mode in modes:
    ours, compile_s, _ = ours_makers[mode](config, batch)
    runs = {'deeplab_jax': ours, 'peer': theirs[mode]}
    if with_library_convs:
      runs['deeplab_jax_library'] = ours_makers[mode](library, batch)[0]
    times = step.interleaved_times(runs, steps, warmup, settle)
    medians = {name: statistics.median(t) for name, t in times.items()}
    rows.append({'mode': mode, 'compile_s': compile_s, 'times': times, 'medians': medians,
                 'ratio': medians['peer'] / medians['deeplab_jax']})
  return rows


def format_rows(rows: list[dict], batch_size: int) -> str:
  lines = []
  for r in rows:
    ours, theirs = r['medians']['deeplab_jax'], r['medians']['peer']
    lines.append(f"{r['mode']:>9}: deeplab_jax {batch_size / ours:.3f} images/s (median {ours:.3f} s, "
                 f"compile {r['compile_s']:.1f} s apart), peer {batch_size / theirs:.3f} images/s "
                 f"(median {theirs:.3f} s); ours / peer = {r['ratio']:.2f}x")
    if 'deeplab_jax_library' in r['medians']:
      before = r['medians']['deeplab_jax_library']
      lines.append(f"           ours with the library's depthwise/1x1 convs: {batch_size / before:.3f} "
                   f"images/s (median {before:.3f} s); / peer = {theirs / before:.2f}x")
    for name, t in r['times'].items():
      lines.append(f"           {name} step times (s): {' '.join(f'{x:.3f}' for x in t)}")
  return '\n'.join(lines)


def main(argv):
  del argv
  step.check_modes(FLAGS.modes)
  rows = compare(FLAGS.modes, FLAGS.batch, FLAGS.size, FLAGS.steps, FLAGS.warmup,
                 FLAGS.dtype or 'float32', FLAGS.arch, FLAGS.num_classes, FLAGS.with_library_convs,
                 FLAGS.settle)
  print(format_rows(rows, FLAGS.batch))


if __name__ == '__main__':
  # step's --config is unused here: --arch names our side.
  define_flags()
  app.run(main)
