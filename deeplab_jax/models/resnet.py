"""ResNet-50/101 backbone with atrous convolution for a chosen output stride.

Two unit layouts, one per family of checkpoints:
- 'torchvision': a stage's stride sits in its first unit (on the 3x3 conv, with a strided 1x1 projection
  shortcut), so torchvision ImageNet weights map one to one; the decoder reads stage 1's output.
- 'slim': the official DeepLab resnet_v1_beta (tf-slim resnet_v1): the stride of blocks 1-3 sits in their
  *last* unit, whose shortcut is the identity subsampled by the stride (resnet_utils.subsample); only
  the first unit of a block, where the channels change, has a 1x1 projection (stride 1). The v3+
  decoder reads `block1/unit_2/bottleneck_v1/conv3`: the last stride-4 unit's conv3 after its BN,
  before the add and ReLU. The output stride is reached as slim's stack_blocks_dense reaches it: the
  unit whose stride is dropped runs at the current rate and later units at the raised one.

When a stage would stride past the requested output stride, its stride becomes 1 and its dilation
multiplies by the stride it dropped; the last stage's units are further multiplied by the multi-grid
rates (DeepLabv3 section 3.2).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvBNReLU, ConvImplLike, ModuleDef, atrous_plan, remat_unit
from deeplab_jax.ops import pool

STAGE_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
STAGE_STRIDES = (1, 2, 2, 2)  # 'torchvision' layout: the stride of a stage's first unit
SLIM_STAGE_STRIDES = (2, 2, 2, 1)  # 'slim' layout: the stride of a block's last unit
STEM_STRIDE = 4  # stem conv stride 2, then max pool stride 2
LAYOUTS = ('torchvision', 'slim')


def stage_strides_and_rates(output_stride: int, layout: str = 'torchvision') -> list[tuple[int, int]]:
  """(stride, rate) per stage so that the backbone's total stride is `output_stride`.

  'torchvision': the stride of the stage's first unit, and the rate of all its units. 'slim': the
  stride of the block's last unit; a block whose stride is dropped keeps the current rate and raises
  the next blocks' (slim's stack_blocks_dense).

  >>> stage_strides_and_rates(8)
  [(1, 1), (2, 1), (1, 2), (1, 4)]
  >>> stage_strides_and_rates(8, 'slim')
  [(2, 1), (1, 1), (1, 2), (1, 4)]
  """
  if layout == 'slim':
    return atrous_plan(SLIM_STAGE_STRIDES, STEM_STRIDE, output_stride, dilate_first=False)
  if layout != 'torchvision':
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
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
  """1x1 -> 3x3 (stride, rate) -> 1x1 (4x width), plus a shortcut.

  The shortcut is a 1x1 projection (BN, no ReLU) when the channels change; when they are kept and the
  stride is not 1, torchvision projects too, while slim (subsample_shortcut=True) takes the identity
  at every stride-th pixel. return_conv3: also return conv3's output (after BN, before the add and
  ReLU), the slim layout's decoder tap.
  """
  width: int
  norm: ModuleDef
  stride: int = 1
  rate: int = 1
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl
  subsample_shortcut: bool = False
  return_conv3: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array | tuple[jax.Array, jax.Array]:
    """x [B, H, W, C] -> [B, H/stride, W/stride, 4 * width] (and conv3's output, of that shape)."""
    out_features = self.width * 4
    y = ConvBNReLU(self.width, self.norm, 1, dtype=self.dtype, conv_impl=self.conv_impl, name='conv1')(x)
    y = ConvBNReLU(self.width, self.norm, 3, self.rate, self.stride, dtype=self.dtype,
                   conv_impl=self.conv_impl, name='conv2')(y)
    y = ConvBNReLU(out_features, self.norm, 1, relu=False, dtype=self.dtype, conv_impl=self.conv_impl,
                   name='conv3')(y)
    if x.shape[-1] == out_features and self.subsample_shortcut:
      x = x[:, ::self.stride, ::self.stride]
    elif x.shape[-1] != out_features or self.stride != 1:
      x = ConvBNReLU(out_features, self.norm, 1, stride=self.stride, relu=False, dtype=self.dtype,
                     conv_impl=self.conv_impl, name='downsample')(x)
    out = nn.relu(x + y)
    return (out, y) if self.return_conv3 else out


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
    return pool.max_pool(x, 3, 2, ((1, 1), (1, 1)))


class ResNet(nn.Module):
  """ResNet backbone returning a dict of features.

  Attributes:
    blocks: bottleneck units per stage, e.g. (3, 4, 23, 3) for ResNet-101.
    norm: BatchNorm factory (see layers.make_norm).
    output_stride: 8, 16 or 32.
    multi_grid: per-unit rate multipliers of the last stage (DeepLabv3: (1, 2, 4)); None for none.
    width: channels of the first stage's 3x3 convs (64 in every published ResNet).
    stem: 'torchvision' (7x7) or 'beta' (three 3x3).
    layout: 'torchvision' or 'slim' unit layout (see the module docstring).
    dilation_style: 'deeplab' or 'torchvision' (see `unit_rates`); the slim layout takes 'deeplab'.
    conv_impl: how convs are computed (ops.atrous.ConvImpl, or an atrous impl name).
    remat: rematerialise each bottleneck unit in the backward pass (see layers.remat_unit).

  Returns:
    {'stage1', 'stage2', 'stage3', 'stage4': [B, H/os, W/os, 32w]: each stage's output, and
     'low_level': [B, H/4, W/4, 4w], the v3+ decoder's features: stage 1's output ('torchvision'), or
     the conv3 of block 1's last stride-4 unit, unit n-1 ('slim'; a one-unit block 1 has none, and the
     stem's output stands in)}.
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
  layout: str = 'torchvision'

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    slim = self.layout == 'slim'
    if slim and self.dilation_style != 'deeplab':
      raise ValueError(f"the slim layout dilates whole blocks; dilation_style={self.dilation_style!r} "
                       "needs layout='torchvision'")
    x = Stem(self.stem, self.width, self.norm, self.dtype, self.conv_impl, name='stem')(x)
    features, previous_rate = {}, 1
    plan = stage_strides_and_rates(self.output_stride, self.layout)
    unit = remat_unit(Bottleneck, self.remat)
    for i, (num_units, (stride, rate)) in enumerate(zip(self.blocks, plan)):
      last = i == len(self.blocks) - 1
      rates = unit_rates(rate, previous_rate, num_units, self.multi_grid if last else None,
                         self.dilation_style)
      strided_unit = num_units - 1 if slim else 0
      tap_unit = num_units - 2 if slim and i == 0 else None  # block1/unit_{n-1}
      if slim and i == 0 and tap_unit < 0:
        features['low_level'] = x
      for j in range(num_units):
        x = unit(self.width * 2 ** i, self.norm, stride if j == strided_unit else 1, rates[j], self.dtype,
                 self.conv_impl, subsample_shortcut=slim, return_conv3=j == tap_unit,
                 name=f'stage{i + 1}_unit{j + 1}')(x)
        if j == tap_unit:
          x, features['low_level'] = x
      features[f'stage{i + 1}'] = x
      if i == 0 and not slim:
        features['low_level'] = x
      previous_rate = rate
    return features
