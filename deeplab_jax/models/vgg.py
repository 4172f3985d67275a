"""VGG-16 backbone of DeepLab v1/v2: 13 3x3 convs with biases, 3x3/2 max pools, atrous where strides drop.

DeepLab-LargeFOV keeps pool4 and pool5 at stride 1 and dilates conv5 by 2 for an output stride of 8.
Generally a pool that would stride past the requested output stride gets stride 1, and every later conv
is dilated by the strides dropped so far. The fc6/fc7 layers live in the head (models/largefov.py).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvImplLike, atrous_plan
from deeplab_jax.ops.atrous import AtrousConv

# (convs, channels) of the five blocks; each block ends in a 3x3 max pool of stride 2 (or 1, see above).
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def pool_strides_and_rates(output_stride: int) -> list[tuple[int, int]]:
  """(pool stride, conv rate) per block: the rate of the block's convs, the stride of its closing pool.

  >>> pool_strides_and_rates(8)
  [(2, 1), (2, 1), (2, 1), (1, 1), (1, 2)]
  """
  return atrous_plan((2,) * len(VGG16_BLOCKS), 1, output_stride, dilate_first=False)


class VGG16(nn.Module):
  """VGG-16 conv1_1..conv5_3 and pool1..pool5.

  Returns:
    {'conv3': [B, H/4, W/4, 256] (conv3_3, stride 4: the decoder's low-level features),
     'pool5': [B, H/os, W/os, 512]}.
  """
  output_stride: int = 8
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    features = {}
    plan = pool_strides_and_rates(self.output_stride)
    for b, ((num_convs, channels), (stride, rate)) in enumerate(zip(VGG16_BLOCKS, plan)):
      for c in range(num_convs):
        x = nn.relu(AtrousConv(channels, 3, rate, use_bias=True, dtype=self.dtype,
                               impl=self.conv_impl, name=f'conv{b + 1}_{c + 1}')(x))
      features[f'conv{b + 1}'] = x
      x = nn.max_pool(x, (3, 3), strides=(stride, stride), padding=((1, 1), (1, 1)))
    features['pool5'] = x
    return features
