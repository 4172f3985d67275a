"""Parameters and multiply-adds (MACs) per module, counted analytically from the convolutions' shapes.

Convention: one multiply-add per kernel tap that touches an output pixel, i.e. a convolution costs
k_h * k_w * (C_in / groups) * C_out * H_out * W_out per image, whatever the dilation (an atrous kernel
has k * k taps, not the (k - 1) * r + 1 squared of a zero-padded lowering). Only convolutions count:
BatchNorm, biases, ReLUs, pooling and the bilinear resizes (including the final upsampling of the logits
to the input size) are left out, as in the DeepLabv3+ paper's tables, whose Table 3/5 numbers count the
network's convolutions. Shapes are traced with `jax.eval_shape`, so nothing is computed.

Against the DeepLabv3+ paper at 513x513 (21 classes; tests/models/test_summary.py): Xception-65 + separable
ASPP + separable decoder, OS 16: 54.04B (paper 54.17B). ResNet-101 with DeepLab's "beta" stem (three 3x3
convs, the ResNet of the official v3+ checkpoints): OS 16 78.20B (81.02B), + decoder 99.96B (101.28B),
OS 8 253.32B (276.18B, -8.3%); with the 7x7 torchvision stem every ResNet number is ~4.3B lower (ASPP
and stage counts are the same). The paper's OS 8 / OS 16 gap (195B) exceeds the analytic one (175B);
the paper does not state its counting, and a zero-padded or space-to-batch lowering of the atrous convs,
whose cost grows with the rate, would account for a gap of that size.
"""
import collections
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv


def conv_macs(module: nn.Module, x: Any, y: Any) -> int:
  """MACs of one call of an atrous (depthwise) conv module mapping x [B, H, W, C] to y [B, H', W', C']."""
  taps = module.kernel_size ** 2
  in_per_group = 1 if isinstance(module, AtrousDepthwiseConv) else x.shape[-1]
  batch, height, width, out = y.shape
  return taps * in_per_group * out * batch * height * width


def count_macs(model: nn.Module, variables: Any, images: Any) -> list[tuple[tuple[str, ...], int]]:
  """(module path, MACs) of every convolution call of model.apply(variables, images); images may be a
  jax.ShapeDtypeStruct. A module called several times (MSC scales) is listed once per call."""
  calls = []

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    module = context.module
    if context.method_name == '__call__' and isinstance(module, (AtrousConv, AtrousDepthwiseConv)):
      calls.append((tuple(module.path), conv_macs(module, args[0], out)))
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


def summarize(model: nn.Module, image_size: int, depth: int = 2) -> dict:
  """Params and MACs of `model` on one [1, S, S, 3] image.

  Returns:
    {'rows': [(module, params, macs)], 'params': total, 'macs': total}.
  """
  images = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  params = group(param_counts(variables['params']), depth)
  macs = group(count_macs(model, variables, images), depth)
  names = list(macs) + [n for n in params if n not in macs]  # execution order
  rows = [(n, params.get(n, 0), macs.get(n, 0)) for n in names]
  return {'rows': rows, 'params': sum(params.values()), 'macs': sum(macs.values())}


def format_summary(summary: dict, title: str = '') -> str:
  """A text table: module, parameters, GMACs, then the totals."""
  width = max([len('module'), len('total')] + [len(n) for n, _, _ in summary['rows']])
  lines = [title] if title else []
  lines.append(f'{"module":<{width}}  {"params":>12}  {"GMACs":>10}')
  lines.append('-' * (width + 26))
  for name, params, macs in summary['rows']:
    lines.append(f'{name:<{width}}  {params:>12,}  {macs / 1e9:>10.3f}')
  lines.append('-' * (width + 26))
  lines.append(f'{"total":<{width}}  {summary["params"]:>12,}  {summary["macs"] / 1e9:>10.3f}')
  lines.append('MACs: conv kernel taps x C_in/groups x C_out x output pixels; BN, biases, pooling and '
               'bilinear resizes not counted.')
  return '\n'.join(lines)


def config_summary(config: ml_collections.ConfigDict, depth: int = 2) -> str:
  """The table for the inference model of `config` at its crop size and training output stride."""
  from deeplab_jax.models.deeplab import build_model  # deeplab imports the model modules this one counts
  model = build_model(config, train=False)
  size = config.data.crop_size
  title = (f'{config.model.backbone} + {config.model.head}{" + decoder" if config.model.decoder else ""}'
           f', output stride {config.model.output_stride}, {size}x{size} input, '
           f'{config.data.num_classes} classes')
  return format_summary(summarize(model, size, depth), title)
