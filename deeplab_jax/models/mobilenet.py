"""MobileNetV2 backbone (Sandler et al. 2018) with a width multiplier and atrous depthwise convs.

As in the official DeepLab code, the network stops at the last inverted-residual block (320 channels at
width 1; no 1x1 conv to 1280), and once the output stride is reached a block's stride becomes 1 and
later depthwise convs are dilated instead.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ModuleDef, atrous_plan, remat_unit
from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv

# (expansion t, channels c, units n, stride s) of the seven stages, from the MobileNetV2 paper's Table 2.
MOBILENETV2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                      (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
LOW_LEVEL_STAGE = 1  # the 24-channel stage ends at stride 4: the decoder's low-level features


def make_divisible(value: float, divisor: int = 8) -> int:
  """Channels rounded to a multiple of divisor, never below 90% of value (the MobileNet rule)."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  return rounded + divisor if rounded < 0.9 * value else rounded


def unit_strides_and_rates(output_stride: int) -> list[list[tuple[int, int]]]:
  """(stride, depthwise rate) of every unit, stage by stage.

  >>> unit_strides_and_rates(8)[3:5]
  [[(1, 1), (1, 2), (1, 2), (1, 2)], [(1, 2), (1, 2), (1, 2)]]
  """
  if output_stride not in (8, 16, 32):
    raise ValueError(f'MobileNetV2 output_stride must be 8, 16 or 32, got {output_stride}')
  strides = [stage_stride if u == 0 else 1 for *_, units, stage_stride in MOBILENETV2_STAGES
             for u in range(units)]
  plan = iter(atrous_plan(strides, 2, output_stride, dilate_first=False))
  return [[next(plan) for _ in range(units)] for _, _, units, _ in MOBILENETV2_STAGES]


class InvertedResidual(nn.Module):
  """1x1 expand -> BN -> ReLU6 -> 3x3 depthwise (stride, rate) -> BN -> ReLU6 -> 1x1 project -> BN."""
  features: int
  expansion: int
  norm: ModuleDef
  stride: int = 1
  rate: int = 1
  dtype: Any = jnp.float32
  atrous_impl: str = 'auto'  # see ops.atrous.AtrousDepthwiseConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = x
    if self.expansion != 1:
      y = AtrousConv(x.shape[-1] * self.expansion, 1, dtype=self.dtype, name='expand')(y)
      y = jax.nn.relu6(self.norm(name='expand_bn')(y))
    y = AtrousDepthwiseConv(3, self.rate, self.stride, dtype=self.dtype, impl=self.atrous_impl,
                            name='depthwise')(y)
    y = jax.nn.relu6(self.norm(name='depthwise_bn')(y))
    y = AtrousConv(self.features, 1, dtype=self.dtype, name='project')(y)
    y = self.norm(name='project_bn')(y)
    return x + y if self.stride == 1 and x.shape[-1] == self.features else y


class MobileNetV2(nn.Module):
  """MobileNetV2 backbone.

  Attributes:
    norm: BatchNorm factory.
    output_stride: 8, 16 or 32.
    width_multiplier: scales every layer's channels (rounded to multiples of 8).
    atrous_impl: 'auto', 'dilation' or 'space_to_batch' (see ops.atrous.AtrousDepthwiseConv.impl).
    remat: rematerialise each inverted-residual unit in the backward pass (see layers.remat_unit).

  Returns:
    {'low_level': [B, H/4, W/4, 24 * width], 'out': [B, H/os, W/os, 320 * width]}.
  """
  norm: ModuleDef
  output_stride: int = 16
  width_multiplier: float = 1.0
  dtype: Any = jnp.float32
  atrous_impl: str = 'auto'
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = AtrousConv(make_divisible(STEM_CHANNELS * self.width_multiplier), 3, stride=2, dtype=self.dtype,
                   name='stem')(x)
    x = jax.nn.relu6(self.norm(name='stem_bn')(x))
    features = {}
    plan = unit_strides_and_rates(self.output_stride)
    unit = remat_unit(InvertedResidual, self.remat)
    for i, ((t, c, _, _), units) in enumerate(zip(MOBILENETV2_STAGES, plan)):
      channels = make_divisible(c * self.width_multiplier)
      for u, (stride, rate) in enumerate(units):
        x = unit(channels, t, self.norm, stride, rate, self.dtype, self.atrous_impl,
                 name=f'stage{i + 1}_unit{u + 1}')(x)
      if i == LOW_LEVEL_STAGE:
        features['low_level'] = x
    features['out'] = x
    return features
