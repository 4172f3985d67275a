"""Ours against torchvision's DeepLabV3-MobileNetV3-Large, both trained from scratch on the same data.

  python -m deeplab_jax.benchmarks.peer_train --config=configs/camvid.py \\
      --config.data.root=../shared/data/camvid [--steps=1500] [--batch=8] [--chunk=25] \\
      [--sides=ours,torchvision] [--eval_images=0] [--json=FILE] [--seed=0] \\
      [--eval_variants=os8,ms_flip,crf] [--precise_bn=50]

Theirs: torchvision `deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=C,
aux_loss=True)`: no downloads, random init. Ours: the --config (any --config.x=y overrides apply).

Protocol, the same for both sides:
  * data: the config's train split (load_splits(config.data)); the same --steps, --batch (default:
    train.batch_size) and crop data.crop_size (a side or (height, width)); random scale in
    [data.min_scale, data.max_scale] of the original frame, random left-right flip; the config's
    ignore label (CamVid: void) left out of the loss and the metrics.
  * schedule: poly, (1 - step / steps) ** 0.9 per iteration, to 0 at --steps, no warmup.
  * evaluation: the config's eval split (the first --eval_images images; 0: all), inferred at the
    config's eval.scales (and eval.flip) of the frame, class probabilities resized bilinearly back to
    the label's size, argmax; ONE metric code for both sides: evaluate.metrics' confusion matrix of
    predictions against the full-resolution labels, summarised by metrics.summarize (IoU, mIoU).
  * BatchNorm: each side is evaluated twice, with its moving statistics as trained and (--precise_bn N,
    default 50) with precise ones: every BatchNorm's statistics averaged over the next N training batches
    of that side, the final weights fixed (deeplab_jax.train.precise_bn; torch: reset_running_stats,
    momentum=None, the model in train mode). A short run from scratch outruns the moving averages
    (decay 0.99 lags by ~100 steps), which hurts each side differently; precise statistics compare the
    trained weights. The ablation rows use the precise statistics.
  * time: the two sides alternate in chunks of --chunk steps in this one process, so load changes on
    a shared machine hit both alike; each side's clock runs over its own steps only (a chunk's batches
    are made before its clock starts; ours' XLA compile is reported apart). images/s = steps * batch /
    that time; the ratio is ours / theirs (> 1: ours trains faster). Eval time includes ours' compile.

Ablation (--eval_variants): after the comparison, our trained model is evaluated again with DeepLab's
inference options added one after another, each row keeping the ones before it, as the papers' tables
do: os8 (model.eval_output_stride=8 on the OS 16 weights), ms_flip (eval.scales times 0.75, 1, 1.25,
with left-right flips), crf (the dense CRF of config.crf on the result). Options that change training
(geometry, the decoder) are rows of separate runs: --sides=ours with the config override.

Each side's own standard recipe otherwise:
  * torchvision (references/segmentation/train.py and presets.py, its README's mobilenet_v3_large
    command: --lr 0.02 --wd 0.000001 --aux-loss): SGD momentum 0.9, lr 0.02 (the aux head's parameter
    group at 10x), weight decay 1e-6 on every parameter, loss = CE(out) + 0.5 * CE(aux); augmentation
    as SegmentationPresetTrain: RandomResize of the shorter side to a uniform integer (here the frame's
    shorter side times [min_scale, max_scale]; PIL bilinear, labels nearest), horizontal flip p=0.5,
    RandomCrop (right/bottom padding: image 0, label ignore), ImageNet mean/std. channels_last, float32.
    Eval resizes the PIL image by each scale (bilinear) and the model upsamples its logits to the input
    size (bilinear, half-pixel).
  * ours: the config's recipe through the library's own data pipeline (pipeline.train_batches) and
    train step (steps.jit_train_step with steps.step_options: its base_lr, weight decay, BatchNorm,
    aux head, loss options) and its evaluator (evaluator.evaluate: eval images padded to
    data.eval_size, corner-aligned resizes when model.upsample_align_corners).
"""
import functools
import json
import os
import statistics
import time
from typing import Any

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np
from PIL import Image

from deeplab_jax import cli, sharding
from deeplab_jax.data import datasets, pipeline, sizes
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import evaluator, metrics
from deeplab_jax.train import loop, optimizer, precise_bn, steps

FLAGS = flags.FLAGS
SIDES = ('ours', 'torchvision')
IMAGENET_MEAN = np.array((0.485, 0.456, 0.406), np.float32)
IMAGENET_STD = np.array((0.229, 0.224, 0.225), np.float32)
# torchvision's references/segmentation recipe for deeplabv3_mobilenet_v3_large (README command).
TV_LR, TV_MOMENTUM, TV_WEIGHT_DECAY, TV_AUX_WEIGHT, TV_AUX_LR_FACTOR, TV_POWER = 0.02, 0.9, 1e-6, 0.5, 10, 0.9


def _os8(config):
  config.model.eval_output_stride = 8


def _ms_flip(config):
  config.eval.scales = tuple(round(s * f, 4) for s in config.eval.scales for f in (0.75, 1.0, 1.25))
  config.eval.flip = True


def _crf(config):
  config.crf.enabled = True


EVAL_VARIANTS = {'os8': _os8, 'ms_flip': _ms_flip, 'crf': _crf}  # name -> config change, in row order


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  config_flags.DEFINE_config_file('config', 'configs/camvid.py', 'Our side, e.g. configs/camvid.py.')
  flags.DEFINE_integer('steps', None, 'Train steps of each side; default: the config\'s train.num_steps.')
  flags.DEFINE_integer('batch', None, 'Batch of each side; default: the config\'s train.batch_size.')
  flags.DEFINE_integer('chunk', 25, 'Steps of one side before the other takes its turn.')
  flags.DEFINE_list('sides', list(SIDES), f'Any of {", ".join(SIDES)}.')
  flags.DEFINE_integer('eval_images', 0, 'Evaluate on the first N images of the eval split; 0: all.')
  flags.DEFINE_integer('seed', None, 'Seed of both sides (init, data order, augmentation); default: '
                       "the config's seed.")
  flags.DEFINE_integer('torch_threads', 0, "torch's intra-op threads; 0: torch's default.")
  flags.DEFINE_string('json', None, 'Also write the results to this JSON file.')
  flags.DEFINE_list('eval_variants', [], f'Ablation rows of our model, cumulative: any of '
                    f'{", ".join(EVAL_VARIANTS)}.')
  flags.DEFINE_integer('precise_bn', 50, 'Also evaluate each side with its BatchNorm statistics averaged '
                       'over this many training batches; 0: moving statistics only.')


# ---------------------------------------------------------------------------------------------------
# torchvision's side


def import_torchvision():
  """(torch, torchvision.models.segmentation), through the peers' tv_shim; UserError without them."""
  from deeplab_jax import peers
  from deeplab_jax.benchmarks import torch_step
  try:
    modules = torch_step.import_peers()
  except ImportError as e:
    raise UserError(f'The torchvision side needs torch, torchvision and the peers\' tv_shim (looked for '
                    f'in {peers.folder()}, $DEEPLAB_JAX_PEERS): {e}. Install them, or pass '
                    '--sides=ours.') from e
  return modules.torch, modules.segmentation


def read_pair(image_path: str, label_path: str, num_classes: int,
              ignore_label: int) -> tuple[Image.Image, np.ndarray]:
  """(RGB PIL image, label [H, W] uint8 with values outside [0, num_classes) set to ignore_label)."""
  image = Image.open(image_path).convert('RGB')
  label = np.asarray(Image.open(label_path))
  if label.ndim != 2:
    raise UserError(f'Label {label_path} is not a single-channel PNG of class indices.')
  return image, np.where(label < num_classes, label, ignore_label).astype(np.uint8)


def torch_input(torch, images: np.ndarray, device):
  """Normalised NHWC float32 images -> the model's NCHW input on device, channels_last in memory."""
  return torch.from_numpy(images).permute(0, 3, 1, 2).to(device).contiguous(memory_format=torch.channels_last)


def normalize_imagenet(image: np.ndarray) -> np.ndarray:
  """uint8 [..., 3] -> float32 (x / 255 - mean) / std, torchvision's Normalize."""
  return (image.astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD


def torchvision_train_example(image: Image.Image, label: np.ndarray, rng: np.random.Generator,
                              crop, min_scale: float, max_scale: float,
                              ignore_label: int) -> tuple[np.ndarray, np.ndarray]:
  """SegmentationPresetTrain on one pair: (image [h, w, 3] float32 normalised, label [h, w]) for a crop of
  (h, w) (an int: a square).

  RandomResize draws the shorter side uniformly from [short * min_scale, short * max_scale] and resizes
  as torchvision's F.resize does (long side int(size * long / short)); then flip, then RandomCrop.
  """
  width, height = image.size
  short, long_ = min(width, height), max(width, height)
  size = int(rng.integers(round(short * min_scale), round(short * max_scale) + 1))
  other = int(size * long_ / short)
  new = (size, other) if width <= height else (other, size)
  image = np.asarray(image.resize(new, Image.BILINEAR))
  label = np.asarray(Image.fromarray(label).resize(new, Image.NEAREST))
  if rng.random() < 0.5:
    image, label = image[:, ::-1], label[:, ::-1]
  crop_h, crop_w = sizes.height_width(crop, 'data.crop_size')
  pad = ((0, max(crop_h - label.shape[0], 0)), (0, max(crop_w - label.shape[1], 0)))
  image = np.pad(image, pad + ((0, 0),))  # pad_if_smaller: the image with 0, before Normalize
  label = np.pad(label, pad, constant_values=ignore_label)
  top = int(rng.integers(0, label.shape[0] - crop_h + 1))
  left = int(rng.integers(0, label.shape[1] - crop_w + 1))
  return (normalize_imagenet(image[top:top + crop_h, left:left + crop_w]),
          label[top:top + crop_h, left:left + crop_w].copy())


class TorchvisionSide:
  """torchvision's model, optimizer and sampler; `run(n)` trains n steps and times them."""

  def __init__(self, config: ml_collections.ConfigDict, split: Split, num_steps: int, batch: int,
               seed: int, threads: int):
    torch, segmentation = import_torchvision()
    self.torch, self.data, self.split, self.batch = torch, config.data, split, batch
    if threads:
      torch.set_num_threads(threads)
    torch.manual_seed(seed)
    self.rng = np.random.default_rng(seed)
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    model = segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None,
                                                       num_classes=config.data.num_classes, aux_loss=True)
    self.model = model.to(self.device, memory_format=torch.channels_last)
    groups = [{'params': [p for p in model.backbone.parameters() if p.requires_grad]},
              {'params': [p for p in model.classifier.parameters() if p.requires_grad]},
              {'params': [p for p in model.aux_classifier.parameters() if p.requires_grad],
               'lr': TV_LR * TV_AUX_LR_FACTOR}]
    self.sgd = torch.optim.SGD(groups, lr=TV_LR, momentum=TV_MOMENTUM, weight_decay=TV_WEIGHT_DECAY)
    self.schedule = torch.optim.lr_scheduler.LambdaLR(
        self.sgd, lambda step: max(0.0, 1 - step / num_steps) ** TV_POWER)
    self.order, self.position, self.step = [], 0, 0

  def describe(self) -> str:
    return (f'torch {self.torch.__version__} on {self.device}, float32, channels_last, '
            f'{self.torch.get_num_threads()} intra-op threads')

  def _next_index(self) -> int:
    """Sampling as the reference's shuffled DataLoader: a new permutation every epoch."""
    if self.position >= len(self.order):
      self.order, self.position = self.rng.permutation(len(self.split)), 0
    self.position += 1
    return int(self.order[self.position - 1])

  def make_batch(self) -> tuple[np.ndarray, np.ndarray]:
    data, pairs = self.data, []
    for _ in range(self.batch):
      i = self._next_index()
      image, label = read_pair(self.split.image_paths[i], self.split.label_paths[i], data.num_classes,
                               data.ignore_label)
      pairs.append(torchvision_train_example(image, label, self.rng, data.crop_size, data.min_scale,
                                             data.max_scale, data.ignore_label))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

  def run(self, num_steps: int) -> tuple[float, list[float]]:
    """(seconds of num_steps train steps, their losses); the batches are made before the clock starts."""
    torch, functional = self.torch, self.torch.nn.functional
    batches = [self.make_batch() for _ in range(num_steps)]
    ignore = self.data.ignore_label
    self.model.train()
    losses = []
    start = time.perf_counter()
    for images, labels in batches:
      y = torch.from_numpy(labels).long().to(self.device)
      outputs = self.model(torch_input(torch, images, self.device))
      loss = (functional.cross_entropy(outputs['out'], y, ignore_index=ignore) +
              TV_AUX_WEIGHT * functional.cross_entropy(outputs['aux'], y, ignore_index=ignore))
      self.sgd.zero_grad(set_to_none=True)
      loss.backward()
      self.sgd.step()
      self.schedule.step()
      losses.append(loss.item())  # synchronises
    self.step += num_steps
    return time.perf_counter() - start, losses

  def recalibrate_batch_norm(self, num_batches: int, log=print) -> None:
    """Precise BN: each BatchNorm's running statistics become their cumulative average over the next
    num_batches training batches (train mode, no gradients, the weights unchanged)."""
    torch = self.torch
    norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
      m.reset_running_stats()
      m.momentum = None  # cumulative moving average
    self.model.train()
    try:
      with torch.no_grad():
        for _ in range(num_batches):
          self.model(torch_input(torch, self.make_batch()[0], self.device))
    finally:
      for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    log(f'precise BN: torchvision\'s {len(norms)} BatchNorms averaged over {num_batches} training batches')

  def evaluate(self, split: Split, config: ml_collections.ConfigDict, log=print) -> dict:
    """metrics.summarize of the model on split, inferred at config.eval.scales (and eval.flip)."""
    data, torch = config.data, self.torch
    model, aux = self.model.eval(), self.model.aux_classifier
    model.aux_classifier = None  # eval needs the main head only
    confusion = np.zeros((data.num_classes, data.num_classes), np.int64)
    try:
      with torch.inference_mode():
        for start in range(0, len(split), config.eval.batch_size):
          pairs = [read_pair(split.image_paths[i], split.label_paths[i], data.num_classes,
                             data.ignore_label)
                   for i in range(start, min(start + config.eval.batch_size, len(split)))]
          for group in _same_size_groups(pairs):
            probs = torchvision_probabilities(torch, model, [p[0] for p in group], self.device,
                                              tuple(config.eval.scales), bool(config.eval.flip))
            confusion += torch_confusion(torch, probs, np.stack([p[1] for p in group]),
                                         data.num_classes, data.ignore_label)
          log(f'  eval torchvision: {min(start + config.eval.batch_size, len(split))}/{len(split)} '
              'images')
    finally:
      model.aux_classifier = aux
    results = metrics.summarize(confusion, data.class_names)
    results.update(num_images=len(split), confusion_matrix=confusion.tolist())
    return results


def _same_size_groups(pairs: list) -> list[list]:
  """Consecutive runs of (image, label) pairs of one size, so that each run batches."""
  groups = []
  for pair in pairs:
    if groups and groups[-1][0][1].shape == pair[1].shape:
      groups[-1].append(pair)
    else:
      groups.append([pair])
  return groups


def torchvision_probabilities(torch, model, images: list[Image.Image], device, scales: tuple[float, ...],
                              flip: bool):
  """Class probabilities [B, C, H, W] at the images' size, averaged over scales (and flips).

  Each scale resizes the PIL images (bilinear) to round(s * side), as torchvision's eval transforms
  do; the model's logits come back at that input size; their softmax is resized (bilinear, half-pixel)
  to H x W.
  """
  functional = torch.nn.functional
  width, height = images[0].size
  total, count = 0.0, 0
  for scale in scales:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    x = np.stack([normalize_imagenet(np.asarray(im.resize(size, Image.BILINEAR))) for im in images])
    x = torch_input(torch, x, device)
    for flipped in (False, True) if flip else (False,):
      probs = functional.softmax(model(x.flip(3) if flipped else x)['out'].float(), dim=1)
      probs = probs.flip(3) if flipped else probs
      total = total + functional.interpolate(probs, size=(height, width), mode='bilinear',
                                             align_corners=False)
      count += 1
  return total / count


def torch_confusion(torch, scores, labels: np.ndarray, num_classes: int, ignore_label: int) -> np.ndarray:
  """[C, C] int64 confusion (evaluate.metrics) of the argmax of scores [B, C, h, w] against labels
  [B, H, W]; scores of another size are resized bilinearly (half-pixel) to the labels' first."""
  if tuple(scores.shape[2:]) != labels.shape[1:]:
    scores = torch.nn.functional.interpolate(scores.float(), size=labels.shape[1:], mode='bilinear',
                                             align_corners=False)
  predictions = scores.argmax(1).to(torch.int32).cpu().numpy()
  counts = metrics.confusion_matrix(jax.numpy.asarray(labels.astype(np.int32)),
                                    jax.numpy.asarray(predictions), num_classes, ignore_label)
  return np.asarray(counts, np.int64)


# ---------------------------------------------------------------------------------------------------
# Our side


class OurSide:
  """Our train state, compiled step and data stream; `run(n)` trains n steps and times them."""

  def __init__(self, config: ml_collections.ConfigDict, split: Split, batch: int):
    self.config, self.batch = config, batch
    self.mesh = sharding.make_mesh()
    steps.check_batch_size(batch, config.train.grad_accum_steps, self.mesh.devices.size)
    self.dropout_rng = jax.random.split(jax.random.key(config.seed))[1]  # the trainer's dropout key
    # The trainer's initialisers drawn from an 'rbg' key: the same distributions, and an init program
    # that compiles several times faster on XLA:CPU (step.init_key).
    # train.init_checkpoint (e.g. converted weights) as the trainer reads it.
    self.state = loop.initial_state(config, self.mesh, jax.random.key(config.seed, impl='rbg'),
                                    log=lambda *_: None)
    self.batches = pipeline.train_batches(split, config.data, config.seed, batch, as_uint8=True)
    options = steps.step_options(config, optimizer.poly_schedule(config.train))
    start = time.perf_counter()
    first = next(self.batches)
    self.step_fn = steps.jit_train_step(self.mesh, options).lower(
        self.state, sharding.global_batch(first, self.mesh), self.dropout_rng).compile()
    self.compile_s = time.perf_counter() - start
    self.pending = [first]
    self.variables = None  # the state's, until recalibrate_batch_norm replaces its statistics

  def describe(self) -> str:
    device = jax.devices()[0]
    return (f'jax {jax.__version__} on {jax.device_count()} x {device.device_kind} '
            f'({jax.default_backend()}), {self.config.model.dtype}')

  def run(self, num_steps: int) -> tuple[float, list[float]]:
    """(seconds of num_steps train steps, their losses); the batches are read before the clock starts."""
    batches = self.pending + [next(self.batches) for _ in range(num_steps - len(self.pending))]
    self.pending, losses = [], []
    start = time.perf_counter()
    for batch in batches:
      self.state, step_metrics = self.step_fn(self.state, sharding.global_batch(batch, self.mesh),
                                              self.dropout_rng)
      losses.append(step_metrics['loss'])
    jax.block_until_ready(self.state)
    seconds = time.perf_counter() - start
    losses = [float(x) for x in losses]
    if not all(np.isfinite(losses)):
      raise UserError(f'Our loss became non-finite ({losses}); lower train.base_lr or check the data.')
    self.variables = None
    return seconds, losses

  def recalibrate_batch_norm(self, num_batches: int, log=print) -> None:
    """Precise BN (deeplab_jax.train.precise_bn) over the next num_batches batches of our training stream."""
    self.variables = precise_bn.recalibrate(self.config, self.state.variables(), self.batches,
                                            num_batches, self.mesh, seed=self.config.seed, log=log)

  def evaluate(self, split: Split, config: ml_collections.ConfigDict, log=print) -> dict:
    """evaluator.evaluate's metrics (no pictures) of the state on split, by config's eval settings."""
    variables = self.variables or self.state.variables()
    results = evaluator.evaluate(variables, split, config, self.mesh, log=log)
    return {k: v for k, v in results.items() if k != 'samples'}

  def close(self):
    self.batches.close()


# ---------------------------------------------------------------------------------------------------
# The comparison


def prepare_config(config: ml_collections.ConfigDict, num_steps: int | None, batch: int | None,
                   seed: int | None) -> ml_collections.ConfigDict:
  """A copy of config with train.num_steps, train.batch_size and seed set (None: keep the config's)."""
  config = config.copy_and_resolve_references()
  config.train.num_steps = num_steps or config.train.num_steps
  config.train.batch_size = batch or config.train.batch_size
  config.seed = config.seed if seed is None else seed
  return config


def load_data(config: ml_collections.ConfigDict, eval_images: int = 0) -> tuple[Split, Split]:
  """(train split, the first eval_images images of the eval split, 0: all); UserError naming a missing
  data root."""
  root = config.data.root
  if not os.path.isdir(root):
    raise UserError(f'Data folder {root} (config data.root) does not exist. Point '
                    '--config.data.root at the dataset, e.g. the CamVid folder holding train/, '
                    'trainannot/, val/ and valannot/.')
  train, val = datasets.load_splits(config.data, log=lambda *_: None)
  if eval_images:
    val = Split(val.name, val.image_paths[:eval_images], val.label_paths[:eval_images], val.label_map)
  return train, val


def _side_line(name: str, seconds: float, losses: list[float], batch: int) -> str:
  return f'{name} loss {statistics.mean(losses):.4f} {len(losses) * batch / seconds:6.2f} images/s'


def train_both(sides: dict[str, Any], num_steps: int, chunk: int, batch: int, log=print) -> dict:
  """Alternates the sides chunk by chunk; returns {side: {'train_s', 'losses'}}."""
  record = {name: {'train_s': 0.0, 'losses': []} for name in sides}
  done = 0
  while done < num_steps:
    n = min(chunk, num_steps - done)
    parts = []
    for name, side in sides.items():
      seconds, losses = side.run(n)
      record[name]['train_s'] += seconds
      record[name]['losses'] += losses
      parts.append(_side_line(name, seconds, losses, batch))
    done += n
    log(f'step {done}/{num_steps}  ' + '  |  '.join(parts))
  return record


def ablation(side: 'OurSide', split: Split, config: ml_collections.ConfigDict, variants: list[str],
             log=print) -> list[dict]:
  """Our model evaluated with the variants added one after another: [{'variant', 'miou', 'eval_s',
  'per_class_iou'}], the first row being the config's own evaluation setting."""
  rows, names = [], []
  for name in [None, *variants]:
    changed = config.copy_and_resolve_references()
    names += [name] if name else []
    for n in names:
      EVAL_VARIANTS[n](changed)
    start = time.perf_counter()
    results = side.evaluate(split, changed, log)
    results = results['crf'] if changed.crf.enabled else results
    label = ' + '.join(names) if names else 'as configured'
    rows.append({'variant': label, 'miou': results['miou'], 'per_class_iou': results['per_class_iou'],
                 'eval_s': time.perf_counter() - start, 'scales': list(changed.eval.scales)})
    log(f'ablation: {label}: mIoU {100 * results["miou"]:.2f}')
  return rows


def compare(config: ml_collections.ConfigDict, side_names: list[str], chunk: int, eval_images: int = 0,
            torch_threads: int = 0, log=print, eval_variants: tuple[str, ...] = (),
            precise_bn_batches: int = 0) -> dict:
  """Trains and evaluates the sides under the module's protocol; returns the report's dict."""
  unknown = sorted(set(side_names) - set(SIDES))
  if unknown or not side_names:
    raise UserError(f'--sides={",".join(side_names)}: expected some of {", ".join(SIDES)}.')
  unknown = [v for v in eval_variants if v not in EVAL_VARIANTS]
  if unknown or (eval_variants and 'ours' not in side_names):
    raise UserError(f'--eval_variants={",".join(eval_variants)}: expected some of '
                    f'{", ".join(EVAL_VARIANTS)}, with ours among --sides.')
  train_split, eval_split = load_data(config, eval_images)
  num_steps, batch = config.train.num_steps, config.train.batch_size
  sides = {}
  if 'ours' in side_names:
    sides['ours'] = OurSide(config, train_split, batch)
  if 'torchvision' in side_names:
    sides['torchvision'] = TorchvisionSide(config, train_split, num_steps, batch, config.seed,
                                           torch_threads)
  data = config.data
  report = {'config': {'backbone': config.model.backbone, 'dataset': data.dataset, 'root': data.root},
            'steps': num_steps, 'batch': batch, 'chunk': chunk, 'crop': data.crop_size,
            'scales': [data.min_scale, data.max_scale], 'eval_scales': list(config.eval.scales),
            'eval_flip': bool(config.eval.flip), 'train_images': len(train_split),
            'eval_images': len(eval_split), 'seed': config.seed, 'precise_bn': precise_bn_batches,
            'sides': {}}
  for name, side in sides.items():
    log(f'{name}: {side.describe()}')
  if 'ours' in sides:
    log(f'ours: train step compiled in {sides["ours"].compile_s:.1f} s (not counted)')
  try:
    record = train_both(sides, num_steps, chunk, batch, log)
    for name, side in sides.items():
      start = time.perf_counter()
      results = side.evaluate(eval_split, config, log)
      eval_s = time.perf_counter() - start
      train_s = record[name]['train_s']
      report['sides'][name] = dict(results, train_s=train_s, eval_s=eval_s,
                                   images_per_s=num_steps * batch / train_s,
                                   final_loss=statistics.mean(record[name]['losses'][-chunk:]),
                                   where=side.describe())
      if precise_bn_batches:
        side.recalibrate_batch_norm(precise_bn_batches, log)
        start = time.perf_counter()
        results = side.evaluate(eval_split, config, log)
        report['sides'][name]['precise_bn'] = dict(results, eval_s=time.perf_counter() - start)
    if eval_variants:
      report['ablation'] = ablation(sides['ours'], eval_split, config, list(eval_variants), log)
  finally:
    if 'ours' in sides:
      sides['ours'].close()
  if len(report['sides']) == 2:
    report['ratio'] = report['sides']['ours']['images_per_s'] / report['sides']['torchvision']['images_per_s']
  return report


def _iou(value) -> str:
  return '    n/a' if value is None else f'{100 * value:7.2f}'


def format_report(report: dict) -> str:
  """Per-class IoU table (one column per side), then mIoU, times and images/s, then the ratio."""
  sides = dict(report['sides'])
  for n in list(sides):  # the precise-BN evaluations as columns of their own
    if 'precise_bn' in sides[n]:
      sides[f'{n}+pBN'] = dict(sides[n]['precise_bn'], train_s=sides[n]['train_s'],
                               images_per_s=sides[n]['images_per_s'], final_loss=sides[n]['final_loss'])
  names = list(sides)
  class_names = list(sides[names[0]]['per_class_iou'])
  header = f'{"class":<14}' + ''.join(f'{n:>16}' for n in names)
  lines = [f'val IoU (%) on {report["eval_images"]} images, {report["steps"]} steps of batch '
           f'{report["batch"]}, crop {report["crop"]}, train scales {report["scales"]}, eval scales '
           f'{report["eval_scales"]}{" + flip" if report["eval_flip"] else ""}', header]
  for c in class_names:
    lines.append(f'{c:<14}' + ''.join(f'{_iou(sides[n]["per_class_iou"][c]):>16}' for n in names))
  lines.append(f'{"mIoU":<14}' + ''.join(f'{_iou(sides[n]["miou"]):>16}' for n in names))
  for n in names:
    s = sides[n]
    lines.append(f'{n}: mIoU {100 * s["miou"]:.2f}  pixel accuracy {100 * s["pixel_accuracy"]:.2f}  '
                 f'train {s["train_s"]:.1f} s ({s["images_per_s"]:.2f} images/s)  eval {s["eval_s"]:.1f} s  '
                 f'final loss {s["final_loss"]:.4f}')
  if 'ratio' in report:
    lines.append(f'ours / torchvision images/s = {report["ratio"]:.2f}x (> 1: ours trains faster)')
  for row in report.get('ablation', []):
    lines.append(f'ours, {row["variant"]}: mIoU {100 * row["miou"]:.2f} (eval scales {row["scales"]}, '
                 f'{row["eval_s"]:.1f} s)')
  return '\n'.join(lines)


def main(argv):
  del argv
  config = prepare_config(cli.load_config(), FLAGS.steps, FLAGS.batch, FLAGS.seed)
  report = compare(config, FLAGS.sides, FLAGS.chunk, FLAGS.eval_images, FLAGS.torch_threads,
                   log=functools.partial(print, flush=True), eval_variants=tuple(FLAGS.eval_variants),
                   precise_bn_batches=FLAGS.precise_bn)
  print(format_report(report), flush=True)
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(report, f, indent=1)
    print(f'Wrote {FLAGS.json}')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
