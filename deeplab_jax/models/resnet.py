"""ResNet-50/101 backbone with atrous convolution for a chosen output stride.

Bottleneck units as torchvision's (the stride sits on the 3x3 conv), so torchvision ImageNet weights map
one to one. When a stage would stride past the requested output stride, its stride becomes 1 and its
dilation multiplies by the stride it dropped; the last stage's units are further multiplied by the
multi-grid rates (DeepLabv3 section 3.2).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvBNReLU, ConvImplLike, ModuleDef, atrous_plan, remat_unit

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_STRIDES = (1, 2, 2, 2)
STEM_STRIDE = 4  # stem conv stride 2, then max pool stride 2


def stage_strides_and_rates(output_stride: int) -> list[tuple[int, int]]:
  """(stride, rate) per stage so that the backbone's total stride is `output_stride`.

  >>> stage_strides_and_rates(8)
  [(1, 1), (2, 1), (1, 2), (1, 4)]
  """
  return atrous_plan(STAGE_STRIDES, STEM_STRIDE, output_stride, dilate_first=True)


def unit_rates(stage_rate: int, previous_rate: int, num_units: int, multi_grid: Sequence[int] | None,
               style: str) -> list[int]:
  """Dilation rate of each unit in a stage.

  'deeplab' style: every unit at the stage rate (times multi_grid in the last stage), as the official
  DeepLab code. 'torchvision' style: the first unit keeps the previous stage's rate, as torchvision's
  `replace_stride_with_dilation`, so imported torchvision models compute the same function.
  """
  rates = [stage_rate] * num_units
  if style == 'torchvision':
    rates[0] = previous_rate
  elif style != 'deeplab':
    raise ValueError(f"dilation_style must be 'deeplab' or 'torchvision', got {style!r}")
  if multi_grid:
    if len(multi_grid) != num_units:
      raise ValueError(f'multi_grid {tuple(multi_grid)} needs one rate per unit of the last stage '
                       f'({num_units} units)')
    rates = [r * g for r, g in zip(rates, multi_grid)]
  return rates


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (stride, rate) -> 1x1 (4x width) with a projection shortcut when shapes change."""
  width: int
  norm: ModuleDef
  stride: int = 1
  rate: int = 1
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out_features = self.width * 4
    y = ConvBNReLU(self.width, self.norm, 1, dtype=self.dtype, conv_impl=self.conv_impl, name='conv1')(x)
    y = ConvBNReLU(self.width, self.norm, 3, self.rate, self.stride, dtype=self.dtype,
                   conv_impl=self.conv_impl, name='conv2')(y)
    y = ConvBNReLU(out_features, self.norm, 1, relu=False, dtype=self.dtype, conv_impl=self.conv_impl,
                   name='conv3')(y)
    if x.shape[-1] != out_features or self.stride != 1:
      x = ConvBNReLU(out_features, self.norm, 1, stride=self.stride, relu=False, dtype=self.dtype,
                     conv_impl=self.conv_impl, name='downsample')(x)
    return nn.relu(x + y)


class Stem(nn.Module):
  """'torchvision': 7x7/2 conv 64; 'beta': three 3x3 convs (64/2, 64, 128) as DeepLab's resnet_v1_beta.

  Both followed by a 3x3/2 max pool, for a stride of 4.
  """
  style: str
  width: int
  norm: ModuleDef
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.ConvImpl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.style == 'torchvision':
      x = ConvBNReLU(self.width, self.norm, 7, stride=2, dtype=self.dtype, conv_impl=self.conv_impl,
                     name='conv1')(x)
    elif self.style == 'beta':
      x = ConvBNReLU(self.width, self.norm, 3, stride=2, dtype=self.dtype, conv_impl=self.conv_impl,
                     name='conv1_1')(x)
      x = ConvBNReLU(self.width, self.norm, 3, dtype=self.dtype, conv_impl=self.conv_impl, name='conv1_2')(x)
      x = ConvBNReLU(self.width * 2, self.norm, 3, dtype=self.dtype, conv_impl=self.conv_impl,
                     name='conv1_3')(x)
    else:
      raise ValueError(f"stem must be 'torchvision' or 'beta', got {self.style!r}")
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))


class ResNet(nn.Module):
  """ResNet backbone returning a dict of features.

  Attributes:
    blocks: bottleneck units per stage, e.g. (3, 4, 23, 3) for ResNet-101.
    norm: BatchNorm factory (see layers.make_norm).
    output_stride: 8, 16 or 32.
    multi_grid: per-unit rate multipliers of the last stage (DeepLabv3: (1, 2, 4)); None for none.
    width: channels of the first stage's 3x3 convs (64 in every published ResNet).
    stem: 'torchvision' (7x7) or 'beta' (three 3x3).
    dilation_style: 'deeplab' or 'torchvision' (see `unit_rates`).
    conv_impl: how convs are computed (ops.atrous.ConvImpl, or an atrous impl name).
    remat: rematerialise each bottleneck unit in the backward pass (see layers.remat_unit).

  Returns:
    {'stage1': [B, H/4, W/4, 4w] (the low-level features of v3+), 'stage2', 'stage3' and
     'stage4': [B, H/os, W/os, 32w]}.
  """
  blocks: Sequence[int]
  norm: ModuleDef
  output_stride: int = 16
  multi_grid: Sequence[int] | None = (1, 2, 4)
  width: int = 64
  stem: str = 'torchvision'
  dilation_style: str = 'deeplab'
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'
  remat: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    x = Stem(self.stem, self.width, self.norm, self.dtype, self.conv_impl, name='stem')(x)
    features, previous_rate = {}, 1
    plan = stage_strides_and_rates(self.output_stride)
    unit = remat_unit(Bottleneck, self.remat)
    for i, (num_units, (stride, rate)) in enumerate(zip(self.blocks, plan)):
      last = i == len(self.blocks) - 1
      rates = unit_rates(rate, previous_rate, num_units, self.multi_grid if last else None,
                         self.dilation_style)
      for j in range(num_units):
        x = unit(self.width * 2 ** i, self.norm, stride if j == 0 else 1, rates[j], self.dtype,
                 self.conv_impl, name=f'stage{i + 1}_unit{j + 1}')(x)
      features[f'stage{i + 1}'] = x
      previous_rate = rate
    return features
