"""SGD with momentum, the poly learning-rate schedule (after an optional warmup), L2 weight decay and
per-parameter learning-rate multipliers (biases, last layers, BatchNorm), as DeepLab's recipes set them.

Parameter groups are read from the parameter paths ('head/logits/kernel'):
  * kernel: a conv's 'kernel'; depthwise kernels are those of a module named 'depthwise'.
  * conv bias: a 'bias' beside a 'kernel'. BatchNorm parameters: 'scale'/'bias' of a module without one.
  * last layers: `train.last_layers` entries, each a module path prefix ('head/aspp' matches
    'head/aspp/...', not 'head/aspp2/...') or 'classifier': the layers that output the class scores,
    whichever the head (`classifier_prefixes`). The prefix 'head' is the whole head, the official TF
    code's last_layers_contain_logits_only=False.
"""
import re
from typing import Iterable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

from deeplab_jax.errors import UserError

CLASSIFIER = 'classifier'
# LargeFOV / ASPP-L branches (models/largefov.py): fc6 -> fc7 -> fc8, or a lone fc6 to the classes.
_FC_BRANCH = re.compile(r'^(head/branch\d+)/fc(\d)$')


def poly_schedule(train_cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """base_lr * (1 - step / num_steps) ** lr_power, as every DeepLab paper trains, after a linear warmup
  of train_cfg.warmup_steps (if any) from 0 to base_lr."""
  poly = optax.polynomial_schedule(train_cfg.base_lr, 0.0, train_cfg.lr_power, train_cfg.num_steps)
  warmup = train_cfg.warmup_steps
  if not warmup:
    return poly
  ramp = optax.linear_schedule(0.0, train_cfg.base_lr, warmup)
  # The poly part keeps counting from step 0, so the run still ends at LR 0 on num_steps.
  return lambda step: jnp.where(step < warmup, ramp(step), poly(step))


def _path_name(path) -> str:
  return '/'.join(str(getattr(k, 'key', k)) for k in path)


def _names(params) -> list[str]:
  return [_path_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def _module(name: str) -> str:
  return name.rpartition('/')[0]


def _under(name: str, prefix: str) -> bool:
  return name == prefix or name.startswith(prefix + '/')


def kernel_mask(params, decay_depthwise: bool = True):
  """True for the kernels weight decay applies to: conv kernels (depthwise ones only if
  decay_depthwise); False for BatchNorm scales/offsets and biases (DeepLab decays weights only)."""
  def decayed(path, _):
    if path[-1].key != 'kernel':
      return False
    return decay_depthwise or len(path) < 2 or path[-2].key != 'depthwise'
  return jax.tree_util.tree_map_with_path(decayed, params)


def classifier_prefixes(names: Iterable[str]) -> tuple[str, ...]:
  """The modules that output class scores, from parameter names: every top-level module's 'logits'
  ('head/logits', 'aux_head/logits') and each LargeFOV/ASPP-L branch's last fc layer ('fc8', or 'fc6'
  when a branch is a single conv to the classes, as in v2's ResNet-101 model)."""
  modules = {_module(n) for n in names}
  found = {m for m in modules if m.count('/') == 1 and m.endswith('/logits')}
  last_fc = {}
  for m in modules:
    match = _FC_BRANCH.match(m)
    if match:
      last_fc[match[1]] = max(last_fc.get(match[1], 0), int(match[2]))
  found |= {f'{branch}/fc{i}' for branch, i in last_fc.items()}
  return tuple(sorted(found))


def last_layer_prefixes(params, last_layers: Sequence[str]) -> tuple[str, ...]:
  """train.last_layers resolved to module path prefixes of params ('classifier' expanded).

  Raises UserError for an entry that matches no parameter: it would silently get neither the last
  layers' LR multiplier nor re-initialisation for a new class count.
  """
  names = _names(params)
  prefixes = []
  for entry in last_layers:
    found = classifier_prefixes(names) if entry == CLASSIFIER else (
        (entry,) if any(_under(n, entry) for n in names) else ())
    if not found:
      modules = sorted({_module(n) for n in names if not n.startswith('backbone/')})
      raise UserError(f'train.last_layers entry {entry!r} matches no parameter of this model. Use '
                      f"'{CLASSIFIER}' (the layers that output class scores), 'head' (the whole head) or "
                      f'a module path such as one of: {", ".join(modules[:12])}.')
    prefixes.extend(p for p in found if p not in prefixes)
  return tuple(prefixes)


def prefix_mask(params, prefixes: Sequence[str]):
  """True for the parameters under one of the module path prefixes ('head/logits')."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(_under(_path_name(path), p) for p in prefixes), params)


class Multipliers(NamedTuple):
  """The learning-rate multipliers of a recipe (train.* fields of the same names)."""
  last_layers: tuple[str, ...] = ('classifier',)
  last_layer_lr_multiplier: float = 1.0
  bias_lr_multiplier: float = 1.0
  batch_norm_lr_multiplier: float = 1.0

  @classmethod
  def from_config(cls, train_cfg: ml_collections.ConfigDict) -> 'Multipliers':
    return cls(tuple(train_cfg.last_layers), *(float(train_cfg[f]) for f in cls._fields[1:]))


def lr_multipliers(params, mults: Multipliers):
  """Per-parameter learning-rate multipliers (a tree of floats like params), products of:
  bias_lr_multiplier on conv biases, last_layer_lr_multiplier under last_layers, and
  batch_norm_lr_multiplier on BatchNorm scales and offsets.

  The official TF DeepLab (get_model_gradient_multipliers) gives biases 2 and last-layer biases
  2 x the last-layer multiplier; the v1/v2 Caffe prototxts give every bias lr_mult 2, the classifier
  10 (its bias 20) and v2's frozen BatchNorm/Scale layers 0.
  """
  names = _names(params)
  with_kernel = {_module(n) for n in names if n.endswith('/kernel')}
  last = last_layer_prefixes(params, mults.last_layers)

  def multiplier(path, _):
    name = _path_name(path)
    value = 1.0
    if path[-1].key == 'bias' and _module(name) in with_kernel:
      value *= mults.bias_lr_multiplier
    elif path[-1].key in ('scale', 'bias'):
      value *= mults.batch_norm_lr_multiplier
    if any(_under(name, p) for p in last):
      value *= mults.last_layer_lr_multiplier
    return value

  return jax.tree_util.tree_map_with_path(multiplier, params)


def scale_by_lr_multipliers(mults: Multipliers) -> optax.GradientTransformation:
  """Multiplies each update by its `lr_multipliers` value (read from the tree's paths at trace time).

  After momentum this equals multiplying the learning rate (momentum is linear in the gradient), and
  it scales the weight-decay term as Caffe's lr_mult and TF's gradient multipliers do.
  """
  def init(params):
    lr_multipliers(params, mults)  # check train.last_layers against the model at once
    return optax.EmptyState()

  def update(updates, state, params=None):
    del params
    scales = lr_multipliers(updates, mults)
    return jax.tree.map(lambda u, s: u if s == 1.0 else u * s, updates, scales), state

  return optax.GradientTransformation(init, update)


def create_optimizer(train_cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Weight decay (the gradient of weight_decay / 2 * |w|^2 on `kernel_mask`'s kernels), SGD with
  momentum on the schedule, then the per-parameter LR multipliers (`lr_multipliers`)."""
  decay_depthwise = train_cfg.decay_depthwise
  return optax.chain(
      optax.add_decayed_weights(train_cfg.weight_decay, mask=lambda p: kernel_mask(p, decay_depthwise)),
      optax.sgd(poly_schedule(train_cfg), momentum=train_cfg.momentum),
      scale_by_lr_multipliers(Multipliers.from_config(train_cfg)))
