"""Placing a checkpoint's tensors on the variables of a config's model.

PyTorch: conv kernels OIHW become HWIO (depthwise [C, 1, k, k] -> [k, k, 1, C]); BatchNorm weight/bias/
running_mean/running_var become params scale/bias and batch_stats mean/var. TF1 (official DeepLab,
slim): `weights` are HWIO already, `depthwise_weights` [k, k, C, 1] become [k, k, 1, C], and
BatchNorm/gamma, beta, moving_mean, moving_variance become scale, bias, mean, var. A checkpoint key with
no place in the model, or a model variable with no key, refuses the conversion with both lists unless
allow_partial (then those variables keep their initialisation). A logits layer whose class count
differs from the config's data.num_classes is left at its initialisation, with a notice: the usual
start of fine-tuning on another dataset.
"""
import dataclasses

import numpy as np

from deeplab_jax.convert import architecture, kinds
from deeplab_jax.convert.entries import Entry
from deeplab_jax.errors import UserError

# Keys that hold no weights deeplab_jax has, in every kind: BN step counters, TF1 training state
# (the step, Momentum slots, moving-average shadow copies).
IGNORED_SUFFIXES = ('num_batches_tracked', '/Momentum', '/ExponentialMovingAverage')
IGNORED_KEYS = ('global_step',)
_TF_BN = (('/gamma', 'params', 'scale'), ('/beta', 'params', 'bias'),
          ('/moving_mean', 'batch_stats', 'mean'), ('/moving_variance', 'batch_stats', 'var'))
# (key suffix, collection, deeplab_jax leaf) per entry kind.
LEAVES = {
    'conv': (('.weight', 'params', 'kernel'),),
    'conv_bias': (('.weight', 'params', 'kernel'), ('.bias', 'params', 'bias')),
    'bn': (('.weight', 'params', 'scale'), ('.bias', 'params', 'bias'),
           ('.running_mean', 'batch_stats', 'mean'), ('.running_var', 'batch_stats', 'var')),
    'tf_conv': (('/weights', 'params', 'kernel'),),
    'tf_conv_bias': (('/weights', 'params', 'kernel'), ('/biases', 'params', 'bias')),
    'tf_depthwise': (('/depthwise_weights', 'params', 'kernel'),),
    'tf_conv_pooling_first': (('/weights', 'params', 'kernel'),),
    'tf_bn': _TF_BN,
}


def to_jax(kind: str, leaf: str, tensor: np.ndarray) -> np.ndarray:
  """A checkpoint tensor in deeplab_jax's layout (see the module docstring)."""
  if leaf != 'kernel':
    return tensor
  if kind in ('conv', 'conv_bias'):
    return np.transpose(tensor, (2, 3, 1, 0))  # the same permutation serves both conv layouts
  if kind == 'tf_depthwise':
    return np.transpose(tensor, (0, 1, 3, 2))  # [k, k, C, multiplier 1] -> [k, k, 1, C]
  if kind == 'tf_conv_pooling_first':
    # The official ASPP concatenates [image pooling, aspp0, aspp1, ...], deeplab_jax's ASPP
    # [branch0, branch1, ..., image pooling]: the projection's first input rows go last.
    features = tensor.shape[-1]
    return np.concatenate([tensor[:, :, features:], tensor[:, :, :features]], axis=2)
  return tensor


def leaf_pairs(entries: list[Entry]) -> list[tuple[str, str, str, str]]:
  """(checkpoint key, collection, deeplab_jax path, entry kind) for every leaf the entries name."""
  return [(f'{prefix}{suffix}', collection, f'{path}/{leaf}', kind)
          for path, prefix, kind in entries for suffix, collection, leaf in LEAVES[kind]]


def _flatten(tree: dict, prefix: str = '') -> dict[str, object]:
  out = {}
  for key, value in tree.items():
    path = f'{prefix}/{key}' if prefix else key
    out.update(_flatten(value, path) if isinstance(value, dict) else {path: value})
  return out


def _unflatten(flat: dict[str, object]) -> dict:
  tree = {}
  for path, value in flat.items():
    *parents, leaf = path.split('/')
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = value
  return tree


def is_logits(path: str) -> bool:
  return path.rsplit('/', 2)[-2] == 'logits'


@dataclasses.dataclass
class Conversion:
  """The outcome of matching a state_dict to a model's variable shapes.

  Attributes:
    values: 'collection/path' -> converted array, for every variable that was loaded.
    unmatched: checkpoint keys with no deeplab_jax variable.
    missing: deeplab_jax variables with no checkpoint key (or a wrongly shaped one, with both shapes).
    reinit: logits variables left at initialisation because the class count differs.
    dropped_first_class: logits variables that lost the checkpoint's first class (kinds.Kind
      .unused_first_class: official ADE20K's 'other').
  """
  values: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  unmatched: list[str] = dataclasses.field(default_factory=list)
  missing: list[str] = dataclasses.field(default_factory=list)
  reinit: list[str] = dataclasses.field(default_factory=list)
  dropped_first_class: list[str] = dataclasses.field(default_factory=list)


def match(state_dict: dict[str, np.ndarray], shapes: dict[str, dict], kind: str,
          entries: list[Entry]) -> Conversion:
  """Places each state_dict tensor on the variable of `shapes` ({'params', 'batch_stats'} trees)."""
  targets = {f'{c}/{p}': s.shape for c in ('params', 'batch_stats')
             for p, s in _flatten(shapes.get(c, {})).items()}
  out, used, entry = Conversion(), set(), kinds.get(kind)
  for key, collection, path, entry_kind in leaf_pairs(entries):
    target = f'{collection}/{path}'
    if target not in targets or key not in state_dict:
      continue
    used.add(key)
    value = to_jax(entry_kind, path.rsplit('/', 1)[1], state_dict[key])
    if (value.shape != targets[target] and is_logits(path) and entry.unused_first_class
        and value.shape[:-1] + (value.shape[-1] - 1,) == targets[target]):
      value = value[..., 1:]
      out.dropped_first_class.append(target)
    if value.shape == targets[target]:
      out.values[target] = value
    elif is_logits(path):
      out.reinit.append(target)
    else:
      out.missing.append(f'{target} (model {targets[target]}, {key} {value.shape})')
  out.unmatched = sorted(k for k in state_dict if k not in used and not entry.ignores(k)
                         and k not in IGNORED_KEYS and not k.endswith(IGNORED_SUFFIXES))
  placed = set(out.values) | set(out.reinit) | {m.split(' ')[0] for m in out.missing}
  out.missing += sorted(t for t in targets if t not in placed
                        and not kinds.expected_at_init(kind, t.split('/', 1)[1]))
  return out


def check(conversion: Conversion, source: str, allow_partial: bool) -> None:
  """Refuses a conversion that leaves keys unused or variables unfilled, unless allow_partial."""
  if allow_partial or not (conversion.unmatched or conversion.missing):
    return
  lines = [f'{source} does not match the config\'s model:']
  if conversion.unmatched:
    lines.append(f'  {len(conversion.unmatched)} checkpoint key(s) with no place in the model: ' +
                 ', '.join(conversion.unmatched))
  if conversion.missing:
    lines.append(f'  {len(conversion.missing)} model variable(s) the checkpoint does not provide: ' +
                 ', '.join(conversion.missing))
  lines.append('Check --kind and --config (backbone and its depth or width, aux_head, decoder), or pass '
               '--allow_partial to keep those variables at their initialisation.')
  raise UserError('\n'.join(lines))


def assemble(values: dict[str, np.ndarray], shapes: dict, init_variables) -> dict:
  """{'params', 'batch_stats'} of `shapes`' structure: converted values where there are, and
  init_variables()'s for the rest (computed only when something is left)."""
  targets = _flatten({c: shapes[c] for c in ('params', 'batch_stats') if c in shapes})
  left = [t for t in targets if t not in values]
  initial = _flatten({k: dict(v) for k, v in init_variables().items()}) if left else {}
  flat = {t: np.asarray(values[t] if t in values else initial[t], np.float32) for t in targets}
  tree = _unflatten(flat)
  return {'params': tree.get('params', {}), 'batch_stats': tree.get('batch_stats', {})}


def _init_variables(config) -> dict:
  """The config's model's initial variables (seed config.seed)."""
  import jax
  import jax.numpy as jnp

  from deeplab_jax.models.deeplab import SHAPE_INFERENCE_SIZE, build_model
  images = jnp.zeros((1, SHAPE_INFERENCE_SIZE, SHAPE_INFERENCE_SIZE, 3), jnp.float32)
  return jax.jit(build_model(config, train=False).init)(jax.random.key(config.seed), images)


def _log_notices(config, conversion: Conversion, kind: str, allow_partial: bool, log) -> None:
  """The architecture notes, the logits left for another class count, what allow_partial let by."""
  for note in architecture.architecture_notes(config.model, kind):
    log(f'note: {note}')
  if conversion.dropped_first_class:
    log(f'notice: the checkpoint has one class more than data.num_classes={config.data.num_classes}; '
        f'its first (official ADE20K\'s unlabelled "other") was dropped from '
        f'{", ".join(conversion.dropped_first_class)}')
  if conversion.reinit:
    log(f'notice: the checkpoint\'s class count differs from data.num_classes='
        f'{config.data.num_classes}; left at initialisation: {", ".join(conversion.reinit)}')
  if allow_partial and (conversion.unmatched or conversion.missing):
    log(f'notice: --allow_partial: {len(conversion.unmatched)} checkpoint key(s) unused '
        f'({", ".join(conversion.unmatched) or "none"}); {len(conversion.missing)} variable(s) left '
        f'at initialisation ({", ".join(conversion.missing) or "none"})')


def convert_variables(config, state_dict: dict[str, np.ndarray], kind: str, allow_partial: bool = False,
                      log=print, source: str = 'the state_dict') -> tuple[dict, Conversion]:
  """({'params', 'batch_stats'} of config's model from a checkpoint's tensors, the conversion).

  Args:
    config: the run config; its model and data.num_classes decide the variables.
    state_dict: checkpoint names -> numpy arrays in the source's layout (kinds.Kind.load reads them:
      torch_file.load_state_dict, tf1.load_checkpoint).
    kind: a name of kinds.KINDS.
    allow_partial: keep unprovided variables at initialisation instead of refusing.
    log: where notices go.
    source: the state_dict's file, for messages.

  Raises:
    UserError: an unknown kind, a backbone the kind does not hold, or (unless allow_partial) keys and
      variables that do not correspond.
  """
  from deeplab_jax.models.deeplab import variable_shapes
  entries = kinds.entries_for(kind, config.model)
  shapes = variable_shapes(config)
  conversion = match(state_dict, shapes, kind, entries)
  check(conversion, source, allow_partial)
  _log_notices(config, conversion, kind, allow_partial, log)
  variables = assemble(conversion.values, shapes, lambda: _init_variables(config))
  log(f'Converted {len(conversion.values)} arrays of {source} ({kind})')
  return variables, conversion
