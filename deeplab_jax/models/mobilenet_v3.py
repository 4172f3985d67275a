"""MobileNetV3-Large backbone (Howard et al. 2019), layer for layer torchvision's `mobilenet_v3_large`.

Inverted residuals with 3x3 or 5x5 depthwise convs, ReLU or hard-swish, and on some units a
squeeze-and-excitation gate (hard-sigmoid); then the 1x1 conv to 6x the last unit's channels (960 at
width 1) that torchvision's DeepLabV3 keeps as its final features. The backbone's BatchNorms use
epsilon 1e-3, as torchvision's MobileNetV3 and the paper's TF code (the heads keep model.bn_epsilon).

Output stride: once it is reached, a unit that would stride keeps stride 1 and its dilation, and that
of every later unit, multiplies by the stride it dropped. At output stride 16 this is torchvision's
`dilated=True` (the last stage, first unit included, at rate 2), as `deeplabv3_mobilenet_v3_large`
uses it.
"""
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvImplLike, ModuleDef, atrous_plan, remat_unit
from deeplab_jax.models.mobilenet import InvertedResidual, make_divisible
from deeplab_jax.ops.atrous import AtrousConv

# (kernel, expanded channels, out channels, squeeze-excite, activation, stride) of the 15 units: the
# paper's Table 1, as torchvision's `_mobilenet_v3_conf('mobilenet_v3_large')`.
MOBILENETV3_LARGE_UNITS = (
    (3, 16, 16, False, 'relu', 1),
    (3, 64, 24, False, 'relu', 2), (3, 72, 24, False, 'relu', 1),
    (5, 72, 40, True, 'relu', 2), (5, 120, 40, True, 'relu', 1), (5, 120, 40, True, 'relu', 1),
    (3, 240, 80, False, 'hard_swish', 2), (3, 200, 80, False, 'hard_swish', 1),
    (3, 184, 80, False, 'hard_swish', 1), (3, 184, 80, False, 'hard_swish', 1),
    (3, 480, 112, True, 'hard_swish', 1), (3, 672, 112, True, 'hard_swish', 1),
    (5, 672, 160, True, 'hard_swish', 2), (5, 960, 160, True, 'hard_swish', 1),
    (5, 960, 160, True, 'hard_swish', 1),
)
STEM_CHANNELS = 16
LAST_CONV_EXPANSION = 6  # the final 1x1 conv: 6 x the last unit's channels (960 = 6 x 160)
BN_EPSILON = 1e-3  # torchvision's MobileNetV3 norm_layer: BatchNorm2d(eps=0.001, momentum=0.01)
LOW_LEVEL_UNIT = 3  # the 24-channel stage ends at stride 4: a decoder's low-level features
# torchvision's DeepLabV3 takes its aux features at the first (strided) 40-channel unit, stride 8,
# not at the end of that stage: `stage_indices[-4]` in `_deeplabv3_mobilenetv3`.
AUX_UNIT = 4


def unit_channels(width_multiplier: float = 1.0) -> list[tuple[int, int, int]]:
  """(input, expanded, output) channels of every unit, each rounded to a multiple of 8 as torchvision.

  >>> unit_channels()[:2]
  [(16, 16, 16), (16, 64, 24)]
  """
  width = lambda c: make_divisible(c * width_multiplier)  # noqa: E731
  channels, previous = [], width(STEM_CHANNELS)
  for _, expanded, out, _, _, _ in MOBILENETV3_LARGE_UNITS:
    channels.append((previous, width(expanded), width(out)))
    previous = width(out)
  return channels


def unit_strides_and_rates(output_stride: int) -> list[tuple[int, int]]:
  """(stride, depthwise rate) of every unit.

  >>> unit_strides_and_rates(16)[11:]
  [(1, 1), (1, 2), (1, 2), (1, 2)]
  """
  return atrous_plan([unit[-1] for unit in MOBILENETV3_LARGE_UNITS], 2, output_stride,
                     dilate_first=True)


class MobileNetV3Large(nn.Module):
  """MobileNetV3-Large backbone.

  Attributes:
    norm: BatchNorm factory; its epsilon is replaced by `bn_epsilon`.
    output_stride: 8, 16 or 32.
    width_multiplier: scales every layer's channels (rounded to multiples of 8), as torchvision's
      width_mult.
    conv_impl: how convs are computed (ops.atrous.ConvImpl, or an atrous impl name).
    remat: rematerialise each inverted-residual unit in the backward pass (see layers.remat_unit).
    bn_epsilon: the backbone's BatchNorm epsilon.

  Returns:
    {'low_level': [B, H/4, W/4, 24], 'aux': [B, H/8, W/8, 40] (torchvision's aux features),
     'out': [B, H/os, W/os, 960]}, channels at width 1.
  """
  norm: ModuleDef
  output_stride: int = 16
  width_multiplier: float = 1.0
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'
  remat: bool = False
  bn_epsilon: float = BN_EPSILON

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    norm = functools.partial(self.norm, epsilon=self.bn_epsilon)
    channels = unit_channels(self.width_multiplier)
    x = AtrousConv(channels[0][0], 3, stride=2, dtype=self.dtype, impl=self.conv_impl, name='stem')(x)
    x = jax.nn.hard_swish(norm(name='stem_bn')(x))
    features = {}
    unit = remat_unit(InvertedResidual, self.remat)
    plan = unit_strides_and_rates(self.output_stride)
    for i, (table, (_, expanded, out), (stride, rate)) in enumerate(
        zip(MOBILENETV3_LARGE_UNITS, channels, plan)):
      kernel, _, _, squeeze_excite, activation, table_stride = table
      x = unit(out, expanded, norm, stride, rate, kernel, activation, squeeze_excite,
               residual=table_stride == 1, dtype=self.dtype, conv_impl=self.conv_impl,
               name=f'unit{i + 1}')(x)
      if i + 1 == LOW_LEVEL_UNIT:
        features['low_level'] = x
      if i + 1 == AUX_UNIT:
        features['aux'] = x
    x = AtrousConv(LAST_CONV_EXPANSION * x.shape[-1], 1, dtype=self.dtype, impl=self.conv_impl,
                   name='last_conv')(x)
    features['out'] = jax.nn.hard_swish(norm(name='last_bn')(x))
    return features
