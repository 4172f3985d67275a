"""MobileNetV2 backbone (Sandler et al. 2018) with a width multiplier and atrous depthwise convs.

As in the official DeepLab code (feature_extractor._mobilenet_v2 over slim's mobilenet_v2), the network
stops at the last inverted-residual block (320 channels at width 1; no 1x1 conv to 1280), once the
output stride is reached a block's stride becomes 1 and later depthwise convs are dilated instead, and
the v3+ decoder reads `layer_4/depthwise_output`: the depthwise conv of the second 24-channel unit after
its BN and ReLU6 (144 channels at width 1, stride 4). Channels at another width follow the official
rule (CHANNEL_ROUNDINGS): rounded to multiples of 8 only at width 1.0.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvImplLike, ModuleDef, atrous_plan, remat_unit
from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv

# (expansion t, channels c, units n, stride s) of the seven stages, from the MobileNetV2 paper's Table 2.
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                      (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
# The decoder's tap, official layer_4 (layer_1 is the stem): stage 2, unit 2's depthwise output.
LOW_LEVEL_UNIT = (1, 1)  # (stage, unit), 0-based
# 'official': DeepLab's feature_extractor._mobilenet_v2: layer channels rounded to multiples of 8 (at
# least 8) at width 1.0, else unrounded (divisible_by=1, min_depth=1); the expansions (input x 6) always
# to multiples of 8 (slim's expand_input_by_factor). 'torchvision': every width to multiples of 8, as
# torchvision's mobilenet_v2(width_mult=...).
CHANNEL_ROUNDINGS = ('official', 'torchvision')


def make_divisible(value: float, divisor: int = 8) -> int:
  """Channels rounded to a multiple of divisor, never below 90% of value (the MobileNet rule)."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


def layer_channels(channels: int, width_multiplier: float, rounding: str = 'official') -> int:
  """Channels of a layer of `channels` at width 1, at `width_multiplier` under `rounding`.

  >>> layer_channels(24, 0.5), layer_channels(24, 0.5, 'torchvision'), layer_channels(24, 1.0)
  (12, 16, 24)
  """
  if rounding not in CHANNEL_ROUNDINGS:
    raise ValueError(f'channel rounding must be one of {CHANNEL_ROUNDINGS}, got {rounding!r}')
  divisor = 8 if rounding == 'torchvision' or width_multiplier == 1.0 else 1
  return make_divisible(channels * width_multiplier, divisor)


def unit_strides_and_rates(output_stride: int) -> list[list[tuple[int, int]]]:
  """(stride, depthwise rate) of every unit, stage by stage.

  >>> unit_strides_and_rates(8)[3:5]
  [[(1, 1), (1, 2), (1, 2), (1, 2)], [(1, 2), (1, 2), (1, 2)]]
  """
  strides = [stage_stride if u == 0 else 1 for *_, units, stage_stride in MOBILENETV2_STAGES
             for u in range(units)]
  plan = iter(atrous_plan(strides, 2, output_stride, dilate_first=False))
  return [[next(plan) for _ in range(units)] for _, _, units, _ in MOBILENETV2_STAGES]


ACTIVATIONS = {'relu': nn.relu, 'relu6': jax.nn.relu6, 'hard_swish': jax.nn.hard_swish}


class SqueezeExcitation(nn.Module):
  """Global average pool -> 1x1 conv (squeeze) -> ReLU -> 1x1 conv -> hard-sigmoid, scaling the input.

  torchvision's SqueezeExcitation(scale_activation=Hardsigmoid), as MobileNetV3 uses it; both convs
  have biases.
  """
  squeeze: int
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.ConvImpl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H, W, C]."""
    scale = jnp.mean(x, axis=(1, 2), keepdims=True)
    scale = nn.relu(AtrousConv(self.squeeze, 1, use_bias=True, dtype=self.dtype, impl=self.conv_impl,
                               name='reduce')(scale))
    scale = AtrousConv(x.shape[-1], 1, use_bias=True, dtype=self.dtype, impl=self.conv_impl,
                       name='expand')(scale)
    return x * jax.nn.hard_sigmoid(scale)


class InvertedResidual(nn.Module):
  """[1x1 expand -> BN -> act] -> k x k depthwise (stride, rate) -> BN -> act -> [SE] -> 1x1 project -> BN.

  MobileNetV2's unit with the defaults (3x3, ReLU6, no squeeze-excitation); MobileNetV3 sets kernel,
  activation (ACTIVATIONS) and squeeze_excite per unit. There is no expand conv when `expanded` equals
  the input channels (expansion 1). The shortcut is added when stride is 1 and the channels are kept,
  and `residual` is on: MobileNetV3 turns it off for units whose table stride is 2, so that a unit made
  stride 1 by dilation still adds none, as in torchvision.
  """
  features: int
  expanded: int
  norm: ModuleDef
  stride: int = 1
  rate: int = 1
  kernel_size: int = 3
  activation: str = 'relu6'
  squeeze_excite: bool = False
  residual: bool = True
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousDepthwiseConv.impl
  return_depthwise: bool = False  # also return the depthwise conv's output after BN and activation

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
    act = ACTIVATIONS[self.activation]
    y = x
    if self.expanded != x.shape[-1]:
      y = AtrousConv(self.expanded, 1, dtype=self.dtype, impl=self.conv_impl, name='expand')(y)
      y = act(self.norm(name='expand_bn')(y))
    y = AtrousDepthwiseConv(self.kernel_size, self.rate, self.stride, dtype=self.dtype,
                            impl=self.conv_impl, name='depthwise')(y)
    y = depthwise = act(self.norm(name='depthwise_bn')(y))
    if self.squeeze_excite:
      y = SqueezeExcitation(make_divisible(self.expanded // 4), self.dtype, conv_impl=self.conv_impl,
                            name='squeeze_excite')(y)
    y = AtrousConv(self.features, 1, dtype=self.dtype, impl=self.conv_impl, name='project')(y)
    y = self.norm(name='project_bn')(y)
    out = x + y if self.residual and self.stride == 1 and x.shape[-1] == self.features else y
    return (out, depthwise) if self.return_depthwise else out


class MobileNetV2(nn.Module):
  """MobileNetV2 backbone.

  Attributes:
    norm: BatchNorm factory.
    output_stride: 8, 16 or 32.
    width_multiplier: scales every layer's channels (rounded as `channel_rounding` says).
    conv_impl: how convs are computed (ops.atrous.ConvImpl, or an atrous impl name).
    remat: rematerialise each inverted-residual unit in the backward pass (see layers.remat_unit).
    channel_rounding: one of CHANNEL_ROUNDINGS.

  Returns:
    {'low_level': [B, H/4, W/4, 144 at width 1] (official layer_4/depthwise_output),
     'out': [B, H/os, W/os, 320 at width 1]}.
  """
  norm: ModuleDef
  output_stride: int = 16
  width_multiplier: float = 1.0
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'
  remat: bool = False
  channel_rounding: str = 'official'

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = AtrousConv(layer_channels(STEM_CHANNELS, self.width_multiplier, self.channel_rounding), 3,
                   stride=2, dtype=self.dtype, impl=self.conv_impl, name='stem')(x)
    x = jax.nn.relu6(self.norm(name='stem_bn')(x))
    features = {}
    plan = unit_strides_and_rates(self.output_stride)
    unit = remat_unit(InvertedResidual, self.remat)
    for i, ((t, c, _, _), units) in enumerate(zip(MOBILENETV2_STAGES, plan)):
      channels = layer_channels(c, self.width_multiplier, self.channel_rounding)
      for u, (stride, rate) in enumerate(units):
        expanded = x.shape[-1] if t == 1 else make_divisible(x.shape[-1] * t)
        tap = (i, u) == LOW_LEVEL_UNIT
        x = unit(channels, expanded, self.norm, stride, rate, dtype=self.dtype, conv_impl=self.conv_impl,
                 return_depthwise=tap, name=f'stage{i + 1}_unit{u + 1}')(x)
        if tap:
          x, features['low_level'] = x
    features['out'] = x
    return features
