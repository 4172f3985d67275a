"""Parameters and multiply-adds (MACs) per module, counted from the convolutions' shapes.

Two conventions (CONVENTIONS):
- 'analytic': one multiply-add per kernel tap that touches an output pixel, i.e. a convolution costs
  k_h * k_w * (C_in / groups) * C_out * H_out * W_out per image, whatever the dilation (an atrous kernel
  has k * k taps, not the (k - 1) * r + 1 squared of a zero-padded lowering).
- 'tf': TensorFlow's op count of the official graph, the DeepLabv3+ paper's tables. TF runs a dilated
  convolution (rate r > 1) as space-to-batch: the input is padded to a multiple of r and split into
  r * r sub-images, so it computes ceil(H / r) * r by ceil(W / r) * r outputs, not H by W (ASPP at rate
  12 on 65x65: 72x72). Everything else as 'analytic'.
Only convolutions count: BatchNorm, biases, ReLUs, pooling and the bilinear resizes (including the final
upsampling of the logits to the input size) are left out, as in the paper's tables. Shapes are traced
with `jax.eval_shape`, so nothing is computed.

Against the DeepLabv3+ paper at 513x513 (21 classes; tests/models/test_summary.py), 'tf' with the
official ResNet-101 (beta stem, slim unit layout, as configs/v3plus_resnet101_voc.py) equals the
official graph's own count: ResNet-101 OS 16 80.83B (paper 81.02B), OS 8 275.94B (276.18B), + decoder
OS 16 102.59B (101.28B: the released decoder counts 1.3% above the paper's row); Xception-65 + separable
ASPP + separable decoder, OS 16 54.05B (54.17B). 'analytic' counts 76.05B, 252.25B, 97.81B and 54.04B:
the paper's figures are TF's space-to-batch counts.
"""
import collections
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax.data import sizes
from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv

CONVENTIONS = ('analytic', 'tf')
_TF_NOTE = ("as TensorFlow counts them (the DeepLabv3+ paper's tables): a rate-r conv computes "
            "ceil(H/r)*r x ceil(W/r)*r outputs (space-to-batch)")
CONVENTION_NOTES = {
    'analytic': 'MACs: conv kernel taps x C_in/groups x C_out x output pixels',
    'tf': f'MACs: conv kernel taps x C_in/groups x C_out x output pixels, {_TF_NOTE}',
}


def _computed_side(side: int, rate: int, convention: str) -> int:
  """Output pixels per side a conv computes: space-to-batch pads a dilated conv's side to a multiple of
  its rate under the 'tf' convention."""
  if convention not in CONVENTIONS:
    raise ValueError(f'convention must be one of {CONVENTIONS}, got {convention!r}')
  return -(-side // rate) * rate if convention == 'tf' and rate > 1 else side


def conv_macs(module: nn.Module, x: Any, y: Any, convention: str = 'analytic') -> int:
  """MACs of one call of an atrous (depthwise) conv module mapping x [B, H, W, C] to y [B, H', W', C']."""
  taps = module.kernel_size ** 2
  in_per_group = 1 if isinstance(module, AtrousDepthwiseConv) else x.shape[-1]
  batch, height, width, out = y.shape
  rate = module.rate if module.kernel_size > 1 else 1
  height, width = (_computed_side(d, rate, convention) for d in (height, width))
  return taps * in_per_group * out * batch * height * width


def count_macs(model: nn.Module, variables: Any, images: Any,
               convention: str = 'analytic') -> list[tuple[tuple[str, ...], int]]:
  """(module path, MACs) of every convolution call of model.apply(variables, images); images may be a
  jax.ShapeDtypeStruct. A module called several times (MSC scales) is listed once per call."""
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == '__call__' and isinstance(module, (AtrousConv, AtrousDepthwiseConv)):
      calls.append((tuple(module.path), conv_macs(module, args[0], out, convention)))
    return out

  with nn.intercept_methods(interceptor):
    jax.eval_shape(model.apply, variables, images)
  return calls


def param_counts(params: Any) -> list[tuple[tuple[str, ...], int]]:
  """(path of the owning module, parameter count) of every parameter array."""
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  return [(tuple(k.key for k in path[:-1]), leaf.size) for path, leaf in flat]


def group(entries: list[tuple[tuple[str, ...], int]], depth: int) -> dict[str, int]:
  """Sums values by the first `depth` names of their path, in first-seen order."""
  totals = collections.OrderedDict()
  for path, value in entries:
    key = '/'.join(path[:depth])
    totals[key] = totals.get(key, 0) + value
  return totals


def summarize(model: nn.Module, image_size, depth: int = 2, convention: str = 'analytic') -> dict:
  """Params and MACs (counted by `convention`, one of CONVENTIONS) of `model` on one [1, S, S, 3] image.

  Returns:
    {'rows': [(module, params, macs)], 'params': total, 'macs': total, 'convention': convention}.
  """
  height, width = sizes.height_width(image_size, 'image size')
  images = jax.ShapeDtypeStruct((1, height, width, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  params = group(param_counts(variables['params']), depth)
  macs = group(count_macs(model, variables, images, convention), depth)
  names = list(macs) + [n for n in params if n not in macs]  # execution order
  rows = [(n, params.get(n, 0), macs.get(n, 0)) for n in names]
  return {'rows': rows, 'params': sum(params.values()), 'macs': sum(macs.values()),
          'convention': convention}


def format_summary(summary: dict, title: str = '', tf_macs: int | None = None) -> str:
  """A text table: module, parameters, GMACs, then the totals; tf_macs: the 'tf' convention's total,
  shown below an 'analytic' table."""
  width = max([len('module'), len('total')] + [len(n) for n, _, _ in summary['rows']])
  lines = [title] if title else []
  lines.append(f'{"module":<{width}}  {"params":>12}  {"GMACs":>10}')
  lines.append('-' * (width + 26))
  for name, params, macs in summary['rows']:
    lines.append(f'{name:<{width}}  {params:>12,}  {macs / 1e9:>10.3f}')
  lines.append('-' * (width + 26))
  lines.append(f'{"total":<{width}}  {summary["params"]:>12,}  {summary["macs"] / 1e9:>10.3f}')
  if tf_macs is not None:
    lines.append(f'{"total, tf count":<{width}}  {"":>12}  {tf_macs / 1e9:>10.3f}')
  lines.append(f'{CONVENTION_NOTES[summary["convention"]]}; BN, biases, pooling and bilinear resizes not '
               'counted.')
  if tf_macs is not None:
    lines.append(f'total, tf count: the same MACs {_TF_NOTE}.')
  return '\n'.join(lines)


def config_summary(config: ml_collections.ConfigDict, depth: int = 2) -> str:
  """The table for the inference model of `config` at its crop size and training output stride."""
  from deeplab_jax.models.deeplab import build_model  # deeplab imports the model modules this one counts
  model = build_model(config, train=False)
  size = sizes.height_width(config.data.crop_size, 'data.crop_size')
  title = (f'{config.model.backbone} + {config.model.head}{" + decoder" if config.model.decoder else ""}'
           f', output stride {config.model.output_stride}, {size[0]}x{size[1]} input, '
           f'{config.data.num_classes} classes')
  tf_macs = summarize(model, size, depth, 'tf')['macs']
  return format_summary(summarize(model, size, depth), title, tf_macs)
