"""Converts a local PyTorch checkpoint into deeplab_jax variables and checkpoints.

  python -m deeplab_jax.convert --source=FILE.pth|FILE.safetensors --kind=KIND \
      --config=configs/pretrained/torchvision_deeplabv3.py:resnet101 --workdir=W [--allow_partial]

Kinds (the PyTorch model the state_dict comes from):
  torchvision_deeplabv3: torchvision deeplabv3_resnet50 / deeplabv3_resnet101 /
    deeplabv3_mobilenet_v3_large (aux head optional); the config's model.backbone says which.
  torchvision_resnet: torchvision ImageNet resnet50 / resnet101, as the backbone of any ResNet config
    (the classifier `fc` is ignored; the head stays at its initialisation).
  torchvision_mobilenet_v3: torchvision ImageNet mobilenet_v3_large, as the backbone of any
    mobilenetv3_large config (the `classifier` is ignored; the head stays at its initialisation).
  smp_deeplabv3plus: segmentation_models_pytorch DeepLabV3Plus with a ResNet encoder.

Nothing is downloaded: the file is read with `torch.load(map_location='cpu', weights_only=True)` or
`safetensors.torch.load_file`. Conv kernels OIHW become HWIO (depthwise [C, 1, k, k] -> [k, k, 1, C]);
BatchNorm weight/bias/running_mean/running_var become params scale/bias and batch_stats mean/var.
A PyTorch key with no place in the model, or a model variable with no PyTorch key, refuses the
conversion with both lists unless --allow_partial (then those variables keep their initialisation).
A logits layer whose class count differs from the config's data.num_classes is left at its
initialisation, with a notice: the usual start of fine-tuning on another dataset.

Written under W:
  W/checkpoints/0: a training checkpoint at step 0 (the whole TrainState, fresh optimizer state), which
    --mode=eval/predict/export restore like any trained run's, and --mode=train resumes from, so that
    training in W fine-tunes the converted weights.
  W/converted: the converted variables alone, an Orbax PyTree checkpoint (StandardCheckpointer) of
    {'params': ..., 'batch_stats': ...} with the config's model's tree structure and float32 leaves;
    read it with `ocp.StandardCheckpointer().restore(path, abstract)` (partial restores work) to
    initialise another run.
  W/converted.json: the source, the kind, and the variables left at their initialisation.
  W/config.json: the config the variables belong to.
"""
import json
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402
import numpy as np  # noqa: E402

from deeplab_jax import cli  # noqa: E402
from deeplab_jax.errors import UserError  # noqa: E402

KINDS = ('torchvision_deeplabv3', 'torchvision_resnet', 'torchvision_mobilenet_v3', 'smp_deeplabv3plus')
RESNETS = ('resnet50', 'resnet101')
# The backbones (model.backbone) each kind's checkpoints hold.
KIND_BACKBONES = {'torchvision_deeplabv3': RESNETS + ('mobilenetv3_large',),
                  'torchvision_resnet': RESNETS, 'torchvision_mobilenet_v3': ('mobilenetv3_large',),
                  'smp_deeplabv3plus': RESNETS}
# Kinds holding a backbone alone: the rest of the model stays at its initialisation.
BACKBONE_ONLY = ('torchvision_resnet', 'torchvision_mobilenet_v3')
# PyTorch keys that hold no weights deeplab_jax has: BN step counters, an ImageNet classifier.
IGNORED_SUFFIXES = ('num_batches_tracked',)
IGNORED_KEYS = {'torchvision_resnet': ('fc.weight', 'fc.bias'),
                'torchvision_mobilenet_v3': ('classifier.0.weight', 'classifier.0.bias',
                                             'classifier.3.weight', 'classifier.3.bias')}
# An entry says: the deeplab_jax module at this '/'-joined path takes the PyTorch module at this
# '.'-joined prefix, as a 'conv' (kernel), 'conv_bias' (kernel + bias) or 'bn' (BatchNorm).
Entry = tuple[str, str, str]


# ----------------------------------------------------------------------------------------------
# Module correspondences
# ----------------------------------------------------------------------------------------------

def conv_bn(jax_path: str, torch_conv: str, torch_bn: str) -> list[Entry]:
  """A ConvBNReLU at jax_path from a PyTorch Conv2d and BatchNorm2d."""
  return [(f'{jax_path}/conv', torch_conv, 'conv'), (f'{jax_path}/bn', torch_bn, 'bn')]


def separable_bn(jax_path: str, torch_separable: str, torch_bn: str) -> list[Entry]:
  """A SeparableConvBNReLU (no depthwise BN) from smp's SeparableConv2d (depthwise, pointwise) + BN."""
  return [(f'{jax_path}/depthwise', f'{torch_separable}.0', 'conv'),
          (f'{jax_path}/pointwise', f'{torch_separable}.1', 'conv'), (f'{jax_path}/bn', torch_bn, 'bn')]


def resnet_entries(blocks: tuple[int, ...], jax_path: str, torch_prefix: str) -> list[Entry]:
  """torchvision's ResNet (conv1, bn1, layerI.J.{conv,bn}K, downsample) onto models.resnet.ResNet."""
  entries = conv_bn(f'{jax_path}/stem/conv1', f'{torch_prefix}conv1', f'{torch_prefix}bn1')
  for i, num_units in enumerate(blocks):
    for j in range(num_units):
      unit, layer = f'{jax_path}/stage{i + 1}_unit{j + 1}', f'{torch_prefix}layer{i + 1}.{j}'
      for k in (1, 2, 3):
        entries += conv_bn(f'{unit}/conv{k}', f'{layer}.conv{k}', f'{layer}.bn{k}')
      if j == 0:
        entries += conv_bn(f'{unit}/downsample', f'{layer}.downsample.0', f'{layer}.downsample.1')
  return entries


def mobilenet_v3_entries(width_multiplier: float, jax_path: str, torch_prefix: str) -> list[Entry]:
  """torchvision's MobileNetV3 `features` (0: stem, 1-15: units' `block`, 16: last conv) onto
  models.mobilenet_v3.MobileNetV3Large. A unit's block is [expand,] depthwise, [SE,] project: conv +
  BN each, SE two biased convs (fc1, fc2); the layers present decide the indices."""
  from deeplab_jax.models import mobilenet_v3
  p = torch_prefix
  entries = [(f'{jax_path}/stem', f'{p}0.0', 'conv'), (f'{jax_path}/stem_bn', f'{p}0.1', 'bn')]
  channels = mobilenet_v3.unit_channels(width_multiplier)
  for n, (table, (inputs, expanded, _)) in enumerate(zip(mobilenet_v3.MOBILENETV3_LARGE_UNITS,
                                                        channels), 1):
    unit, block = f'{jax_path}/unit{n}', f'{p}{n}.block'
    layers = (['expand'] if expanded != inputs else []) + ['depthwise'] + (
        ['squeeze_excite'] if table[3] else []) + ['project']
    for j, layer in enumerate(layers):
      if layer == 'squeeze_excite':
        entries += [(f'{unit}/squeeze_excite/reduce', f'{block}.{j}.fc1', 'conv_bias'),
                    (f'{unit}/squeeze_excite/expand', f'{block}.{j}.fc2', 'conv_bias')]
      else:
        entries += [(f'{unit}/{layer}', f'{block}.{j}.0', 'conv'),
                    (f'{unit}/{layer}_bn', f'{block}.{j}.1', 'bn')]
  last = len(channels) + 1
  return entries + [(f'{jax_path}/last_conv', f'{p}{last}.0', 'conv'),
                    (f'{jax_path}/last_bn', f'{p}{last}.1', 'bn')]


def backbone_entries(model_cfg, jax_path: str, torch_prefix: str) -> list[Entry]:
  """The torchvision backbone of model_cfg.backbone (ResNet or MobileNetV3) at torch_prefix."""
  if model_cfg.backbone == 'mobilenetv3_large':
    return mobilenet_v3_entries(model_cfg.mobilenet.width_multiplier, jax_path, torch_prefix)
  from deeplab_jax.models import resnet
  blocks = tuple(model_cfg.resnet.blocks) or resnet.STAGE_BLOCKS[int(model_cfg.backbone[6:])]
  return resnet_entries(blocks, jax_path, torch_prefix)


def aspp_entries(jax_path: str, torch_aspp: str, separable: bool) -> list[Entry]:
  """torchvision's / smp's ASPP (convs.0-3, convs.4 = pooling, project) onto models.aspp.ASPP."""
  entries = conv_bn(f'{jax_path}/branch0', f'{torch_aspp}.convs.0.0', f'{torch_aspp}.convs.0.1')
  for i in (1, 2, 3):
    branch = f'{torch_aspp}.convs.{i}'
    entries += (separable_bn(f'{jax_path}/branch{i}', f'{branch}.0', f'{branch}.1') if separable else
                conv_bn(f'{jax_path}/branch{i}', f'{branch}.0', f'{branch}.1'))
  entries += conv_bn(f'{jax_path}/image_pooling/conv_bn', f'{torch_aspp}.convs.4.1',
                     f'{torch_aspp}.convs.4.2')
  return entries + conv_bn(f'{jax_path}/project', f'{torch_aspp}.project.0', f'{torch_aspp}.project.1')


def torchvision_deeplabv3_entries(model_cfg) -> list[Entry]:
  """torchvision's DeepLabV3 (backbone, classifier = DeepLabHead, aux_classifier = FCNHead)."""
  return (backbone_entries(model_cfg, 'backbone', 'backbone.') +
          aspp_entries('head/aspp', 'classifier.0', separable=False) +
          conv_bn('head/post_conv', 'classifier.1', 'classifier.2') +
          [('head/logits', 'classifier.4', 'conv_bias')] +
          conv_bn('aux_head/conv_bn', 'aux_classifier.0', 'aux_classifier.1') +
          [('aux_head/logits', 'aux_classifier.4', 'conv_bias')])


def smp_deeplabv3plus_entries(model_cfg) -> list[Entry]:
  """smp's DeepLabV3Plus (encoder, decoder.aspp = ASPP + separable conv, block1, block2, head)."""
  return (backbone_entries(model_cfg, 'backbone', 'encoder.') +
          aspp_entries('head/aspp', 'decoder.aspp.0', separable=True) +
          separable_bn('head/post_conv', 'decoder.aspp.1', 'decoder.aspp.2') +
          conv_bn('head/low_level_project', 'decoder.block1.0', 'decoder.block1.1') +
          separable_bn('head/decoder_conv1', 'decoder.block2.0', 'decoder.block2.1') +
          [('head/logits', 'segmentation_head.0', 'conv_bias')])


def entries_for(kind: str, model_cfg) -> list[Entry]:
  """The correspondences of a `kind` checkpoint with the model of model_cfg."""
  if model_cfg.backbone not in KIND_BACKBONES[kind]:
    raise UserError(f'--kind={kind} holds a {" or ".join(KIND_BACKBONES[kind])} backbone; the config\'s '
                     f'model.backbone is {model_cfg.backbone!r}.')
  if kind == 'torchvision_deeplabv3':
    return torchvision_deeplabv3_entries(model_cfg)
  if kind == 'torchvision_resnet':
    return backbone_entries(model_cfg, 'backbone', '')
  if kind == 'torchvision_mobilenet_v3':
    return backbone_entries(model_cfg, 'backbone', 'features.')
  return smp_deeplabv3plus_entries(model_cfg)


def expected_at_init(kind: str, path: str) -> bool:
  """Variables a kind never provides: the head and aux head of a backbone-only checkpoint."""
  return kind in BACKBONE_ONLY and not path.startswith('backbone/')


# ----------------------------------------------------------------------------------------------
# Tensors
# ----------------------------------------------------------------------------------------------

def torch_to_jax(kind: str, name: str, tensor: np.ndarray) -> np.ndarray:
  """A PyTorch weight in deeplab_jax's layout: OIHW -> HWIO, [C, 1, k, k] depthwise -> [k, k, 1, C]."""
  if kind.startswith('conv') and name == 'weight':
    return np.transpose(tensor, (2, 3, 1, 0))  # the same permutation serves both conv layouts
  return tensor


# (PyTorch suffix, collection, deeplab_jax leaf) per entry kind.
LEAVES = {
    'conv': (('weight', 'params', 'kernel'),),
    'conv_bias': (('weight', 'params', 'kernel'), ('bias', 'params', 'bias')),
    'bn': (('weight', 'params', 'scale'), ('bias', 'params', 'bias'),
           ('running_mean', 'batch_stats', 'mean'), ('running_var', 'batch_stats', 'var')),
}


def leaf_pairs(entries: list[Entry]) -> list[tuple[str, str, str, str]]:
  """(torch key, collection, deeplab_jax path, entry kind) for every leaf the entries name."""
  return [(f'{prefix}.{suffix}', collection, f'{path}/{leaf}', kind)
          for path, prefix, kind in entries for suffix, collection, leaf in LEAVES[kind]]


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """The float32 numpy tensors of a .pth/.pt/.bin state_dict or a .safetensors file.

  A training checkpoint holding the state_dict under 'model' or 'state_dict' (torchvision's reference
  scripts, Lightning) is unwrapped.
  """
  if not os.path.isfile(path):
    raise UserError(f'--source {path} is not a file. Pass a local PyTorch checkpoint (.pth or '
                    '.safetensors); nothing is downloaded here.')
  try:
    if path.endswith('.safetensors'):
      from safetensors.torch import load_file
      tensors = load_file(path, device='cpu')
    else:
      import torch
      tensors = torch.load(path, map_location='cpu', weights_only=True)
  except ImportError as e:
    raise UserError(f'Reading {path} needs PyTorch (and safetensors for .safetensors files): {e}. '
                    'Install them (../shared/peers/setup.sh) to convert.') from e
  except Exception as e:  # torch and safetensors raise many types for damaged or foreign files
    raise UserError(f'Cannot read {path} as a PyTorch state_dict ({type(e).__name__}: '
                    f'{str(e)[:300]}). Expected a .pth saved with torch.save(model.state_dict()) or '
                    'a .safetensors file.') from e
  for wrapper in ('model', 'state_dict'):
    if isinstance(tensors, dict) and isinstance(tensors.get(wrapper), dict):
      tensors = tensors[wrapper]
  if not isinstance(tensors, dict) or not tensors:
    raise UserError(f'{path} holds no state_dict (a dict of tensor names to tensors).')
  return {k: v.detach().float().numpy() for k, v in tensors.items() if hasattr(v, 'numpy')}


# ----------------------------------------------------------------------------------------------
# Conversion onto a model's variables
# ----------------------------------------------------------------------------------------------

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


class Conversion:
  """The outcome of matching a state_dict to a model's variable shapes.

  Attributes:
    values: 'collection/path' -> converted array, for every variable that was loaded.
    unmatched: PyTorch keys with no deeplab_jax variable.
    missing: deeplab_jax variables with no PyTorch key (or a wrongly shaped one, with both shapes).
    reinit: logits variables left at initialisation because the class count differs.
  """

  def __init__(self):
    self.values, self.unmatched, self.missing, self.reinit = {}, [], [], []


def match(state_dict: dict[str, np.ndarray], shapes: dict[str, dict], kind: str,
          entries: list[Entry]) -> Conversion:
  """Places each state_dict tensor on the variable of `shapes` ({'params', 'batch_stats'} trees)."""
  targets = {f'{c}/{p}': s.shape for c in ('params', 'batch_stats')
             for p, s in _flatten(shapes.get(c, {})).items()}
  out, used = Conversion(), set()
  for key, collection, path, entry_kind in leaf_pairs(entries):
    target = f'{collection}/{path}'
    if target not in targets or key not in state_dict:
      continue
    used.add(key)
    value = torch_to_jax(entry_kind, key.rsplit('.', 1)[1], state_dict[key])
    if value.shape == targets[target]:
      out.values[target] = value
    elif is_logits(path):
      out.reinit.append(target)
    else:
      out.missing.append(f'{target} (model {targets[target]}, {key} {value.shape})')
  ignored = IGNORED_KEYS.get(kind, ())
  out.unmatched = sorted(k for k in state_dict if k not in used and k not in ignored
                         and not k.endswith(IGNORED_SUFFIXES))
  placed = set(out.values) | set(out.reinit) | {m.split(' ')[0] for m in out.missing}
  out.missing += sorted(t for t in targets if t not in placed
                        and not expected_at_init(kind, t.split('/', 1)[1]))
  return out


def check(conversion: Conversion, source: str, allow_partial: bool) -> None:
  """Refuses a conversion that leaves keys unused or variables unfilled, unless allow_partial."""
  if allow_partial or not (conversion.unmatched or conversion.missing):
    return
  lines = [f'{source} does not match the config\'s model:']
  if conversion.unmatched:
    lines.append(f'  {len(conversion.unmatched)} PyTorch key(s) with no place in the model: ' +
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


# ----------------------------------------------------------------------------------------------
# Architecture checks the shapes cannot make
# ----------------------------------------------------------------------------------------------

# Config fields that change the function but no shape, with the value each peer computes with; a
# (kind, backbone) entry takes precedence over the kind's.
PEER_ARCHITECTURE = {
    'torchvision_deeplabv3': {'output_stride': 8, 'resnet.dilation_style': 'torchvision',
                              'multi_grid': (), 'resnet.stem': 'torchvision',
                              'upsample_align_corners': False},
    ('torchvision_deeplabv3', 'mobilenetv3_large'): {'output_stride': 16, 'aspp_rates': (12, 24, 36),
                                                     'upsample_align_corners': False},
    'torchvision_resnet': {'resnet.stem': 'torchvision'},
    'torchvision_mobilenet_v3': {},
    'smp_deeplabv3plus': {'output_stride': 16, 'resnet.dilation_style': 'deeplab', 'multi_grid': (),
                          'resnet.stem': 'torchvision', 'upsample_align_corners': True,
                          'separable_depthwise_bn': False},
}


def architecture_notes(model_cfg, kind: str) -> list[str]:
  """Config fields that differ from the peer's architecture (the weights still load, the function
  differs: fine for fine-tuning, not for reproducing the peer's numbers)."""
  notes = []
  peer_fields = PEER_ARCHITECTURE.get((kind, model_cfg.backbone), PEER_ARCHITECTURE[kind])
  for field, peer in peer_fields.items():
    value = model_cfg
    for part in field.split('.'):
      value = value[part]
    value = tuple(value) if isinstance(value, (list, tuple)) else value
    if value != peer:
      notes.append(f'model.{field} is {value!r}; the {kind} peer computes with {peer!r}')
  return notes


# ----------------------------------------------------------------------------------------------
# Conversion of a file into a workdir
# ----------------------------------------------------------------------------------------------

def convert_variables(config, state_dict: dict[str, np.ndarray], kind: str, allow_partial: bool = False,
                      log=print, source: str = 'the state_dict') -> tuple[dict, Conversion]:
  """({'params', 'batch_stats'} of config's model from a PyTorch state_dict, the conversion).

  Args:
    config: the run config; its model and data.num_classes decide the variables.
    state_dict: PyTorch names -> numpy arrays in PyTorch's layout (see load_state_dict).
    kind: one of KINDS.
    allow_partial: keep unprovided variables at initialisation instead of refusing.
    log: where notices go.
    source: the state_dict's file, for messages.

  Raises:
    UserError: an unknown kind, an unreadable file, or (unless allow_partial) keys and variables that
      do not correspond.
  """
  import jax
  import jax.numpy as jnp

  from deeplab_jax.models.deeplab import build_model
  if kind not in KINDS:
    raise UserError(f'Unknown --kind {kind!r}; known: {", ".join(KINDS)}.')
  entries = entries_for(kind, config.model)
  model = build_model(config, train=False)
  image = jnp.zeros((1, 33, 33, 3), jnp.float32)  # variable shapes do not depend on the image size
  shapes = jax.eval_shape(model.init, jax.random.key(0), image)
  conversion = match(state_dict, shapes, kind, entries)
  check(conversion, source, allow_partial)
  for note in architecture_notes(config.model, kind):
    log(f'note: {note}')
  if conversion.reinit:
    log(f'notice: the checkpoint\'s class count differs from data.num_classes='
        f'{config.data.num_classes}; left at initialisation: {", ".join(conversion.reinit)}')
  if allow_partial and (conversion.unmatched or conversion.missing):
    log(f'notice: --allow_partial: {len(conversion.unmatched)} PyTorch key(s) unused '
        f'({", ".join(conversion.unmatched) or "none"}); {len(conversion.missing)} variable(s) left '
        f'at initialisation ({", ".join(conversion.missing) or "none"})')
  init = lambda: jax.jit(model.init)(jax.random.key(config.seed), image)  # noqa: E731
  variables = assemble(conversion.values, shapes, init)
  log(f'Converted {len(conversion.values)} arrays of {source} ({kind})')
  return variables, conversion


def write_workdir(config, variables: dict, workdir: str, report: dict, log=print) -> None:
  """W/checkpoints/0 (a TrainState), W/converted (the variables), W/converted.json, W/config.json."""
  import jax
  import orbax.checkpoint as ocp

  from deeplab_jax import checkpoint
  from deeplab_jax.checkpoint import Checkpointer
  from deeplab_jax.train import optimizer
  from deeplab_jax.train.state import TrainState
  checkpoints = os.path.abspath(os.path.join(workdir, 'checkpoints'))
  if os.path.isdir(checkpoints) and os.listdir(checkpoints):
    raise UserError(f'{checkpoints} already holds checkpoints; convert into a fresh --workdir so '
                    'converted weights never mix with a trained run.')
  checkpoint.prepare_workdir(workdir, config)
  variables = jax.tree.map(jax.numpy.asarray, variables)
  state = TrainState.create(apply_fn=None, params=variables['params'], tx=optimizer.create_optimizer(
      config.train), batch_stats=variables['batch_stats'])
  checkpointer = Checkpointer(checkpoints, config.train.keep_checkpoints)
  checkpointer.save(0, state, force=True)
  checkpointer.close()
  with ocp.StandardCheckpointer() as standalone:
    standalone.save(os.path.abspath(os.path.join(workdir, 'converted')), variables, force=True)
  with open(os.path.join(workdir, 'converted.json'), 'w') as f:
    json.dump(report, f, indent=1)
  log(f'Wrote {checkpoints}/0 (--mode=eval/predict/train with --workdir={workdir}) and '
      f'{os.path.join(workdir, "converted")}')


def convert(config, source: str, kind: str, workdir: str, allow_partial: bool = False,
            log=print) -> dict:
  """Converts `source` and writes it into workdir (see the module docstring); returns the variables."""
  if kind not in KINDS:
    raise UserError(f'Unknown --kind {kind!r}; known: {", ".join(KINDS)}.')
  variables, conversion = convert_variables(config, load_state_dict(source), kind, allow_partial, log,
                                            source)
  report = {'source': os.path.abspath(source), 'kind': kind, 'loaded': len(conversion.values),
            'unused_torch_keys': conversion.unmatched,
            'left_at_initialisation': conversion.missing + conversion.reinit}
  write_workdir(config, variables, workdir, report, log)
  return variables


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def define_flags():
  """The command line's flags; defined only when run as a program, so importing this module (tests,
  other tools with a --config flag of their own) defines nothing."""
  config_flags.DEFINE_config_file('config', None, 'Config of the model to convert into, e.g. '
                                  'configs/pretrained/torchvision_deeplabv3.py:resnet101.',
                                  lock_config=True)
  flags.DEFINE_string('source', None, 'Local PyTorch checkpoint: .pth/.pt state_dict or .safetensors.')
  flags.DEFINE_enum('kind', None, list(KINDS), 'The PyTorch model the checkpoint is from.')
  flags.DEFINE_string('workdir', None, 'Run folder to write checkpoints/0 and converted/ into.')
  flags.DEFINE_bool('allow_partial', False, 'Convert even when PyTorch keys are unused or model '
                    'variables unprovided (those keep their initialisation).')
  flags.mark_flags_as_required(['config', 'source', 'kind', 'workdir'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = cli.load_config()
  f = flags.FLAGS
  convert(config, f.source, f.kind, f.workdir, f.allow_partial)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
