"""Aligned Xception-65, the DeepLabv3+ variant (section 3.2 of the v3+ paper).

Entry flow (2 convs + 3 blocks), middle flow (16 blocks), exit flow (2 blocks). Against the original
Xception: more middle-flow blocks, every max pool replaced by a stride-2 depthwise-separable conv, and BN
after every depthwise conv. As in the official DeepLab code, the ReLUs come before each separable conv
(pre-activation) except in the last block, where they follow its depthwise and pointwise convs.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import (
  ConvBNReLU,
  ConvImplLike,
  ModuleDef,
  SeparableConvBNReLU,
  atrous_plan,
  remat_unit,
)

# (name, depths of the 3 separable convs, shortcut, stride, units, ReLU inside the separable convs).
XCEPTION65_BLOCKS = (
    ('entry_block1', (128, 128, 128), 'conv', 2, 1, False),
    ('entry_block2', (256, 256, 256), 'conv', 2, 1, False),
    ('entry_block3', (728, 728, 728), 'conv', 2, 1, False),
    ('middle', (728, 728, 728), 'sum', 1, 16, False),
    ('exit_block1', (728, 1024, 1024), 'conv', 2, 1, False),
    ('exit_block2', (1536, 1536, 2048), 'none', 1, 1, True),
)
STEM_STRIDE = 2


def block_strides_and_rates(output_stride: int) -> list[tuple[int, int]]:
  """(stride, rate) per block, with the official code's rule: once the output stride is reached, a
  block's stride becomes 1, it runs at the current rate, and later blocks at rate * that stride.

  >>> block_strides_and_rates(16)
  [(2, 1), (2, 1), (2, 1), (1, 1), (1, 1), (1, 2)]
  """
  return atrous_plan([block[-3] for block in XCEPTION65_BLOCKS], STEM_STRIDE, output_stride,
                     dilate_first=False)


class XceptionUnit(nn.Module):
  """Three separable convs (stride on the last) plus a 'conv' (1x1 + BN), 'sum' or 'none' shortcut.

  Also returns the second separable conv's output (the v3+ low-level features in entry block 2).
  """
  depths: Sequence[int]
  norm: ModuleDef
  shortcut: str
  stride: int = 1
  rates: Sequence[int] = (1, 1, 1)
  relu_inside: bool = False
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousDepthwiseConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    y, second = x, None
    for i, (depth, rate) in enumerate(zip(self.depths, self.rates)):
      if not self.relu_inside:
        y = nn.relu(y)
      y = SeparableConvBNReLU(depth, self.norm, 3, rate, self.stride if i == 2 else 1,
                              relu=self.relu_inside, dtype=self.dtype, conv_impl=self.conv_impl,
                              name=f'separable{i + 1}')(y)
      second = y if i == 1 else second
    if self.shortcut == 'conv':
      x = ConvBNReLU(self.depths[-1], self.norm, 1, stride=self.stride, relu=False, dtype=self.dtype,
                     conv_impl=self.conv_impl, name='shortcut')(x)
    return (y + x if self.shortcut != 'none' else y), second


class Xception65(nn.Module):
  """Aligned Xception-65 backbone.

  Attributes:
    norm: BatchNorm factory.
    output_stride: 8, 16 or 32.
    multi_grid: rate multipliers of the last block's three separable convs; None for none.
    middle_units: units of the middle flow (16 in Xception-65).
    conv_impl: how convs are computed (ops.atrous.ConvImpl, or an atrous impl name).
    remat: rematerialise each unit in the backward pass (see layers.remat_unit).

  Returns:
    {'low_level': [B, H/4, W/4, 256] (entry block 2, second separable conv), 'exit': [B, H/os, W/os,
     2048]}.
  """
  norm: ModuleDef
  output_stride: int = 16
  multi_grid: Sequence[int] | None = None
  middle_units: int = 16
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = ConvBNReLU(32, self.norm, 3, stride=2, dtype=self.dtype, conv_impl=self.conv_impl, name='conv1_1')(x)
    x = ConvBNReLU(64, self.norm, 3, dtype=self.dtype, conv_impl=self.conv_impl, name='conv1_2')(x)
    features = {}
    plan = block_strides_and_rates(self.output_stride)
    unit = remat_unit(XceptionUnit, self.remat)
    for (name, depths, shortcut, _, units, relu_inside), (stride, rate) in zip(XCEPTION65_BLOCKS, plan):
      units = self.middle_units if name == 'middle' else units
      grid = self.multi_grid if name == 'exit_block2' and self.multi_grid else (1, 1, 1)
      for u in range(units):
        unit_name = f'{name}_unit{u + 1}' if units > 1 else name
        x, second = unit(depths, self.norm, shortcut, stride, tuple(rate * g for g in grid),
                         relu_inside, self.dtype, self.conv_impl, name=unit_name)(x)
        if name == 'entry_block2':
          features['low_level'] = second
    features['exit'] = x
    return features
