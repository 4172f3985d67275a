"""VGG-16 backbone of DeepLab v1/v2: 13 3x3 convs with biases, 3x3/2 max pools, atrous where strides drop.

DeepLab-LargeFOV keeps pool4 and pool5 at stride 1 and dilates conv5 by 2 for an output stride of 8.
Generally a pool that would stride past the requested output stride gets stride 1, and every later conv
is dilated by the strides dropped so far. The fc6/fc7 layers live in the head (models/largefov.py).

The pools round up as Caffe's pooling layer (the released v1/v2 prototxts ran on Caffe): a 306 crop
gives 154, 78, 40 after pool1-3, where rounding down gives 153, 77, 39. Odd sizes such as 321 and 513
come out the same either way.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvImplLike, atrous_plan
from deeplab_jax.ops import pool
from deeplab_jax.ops.atrous import AtrousConv

# (convs, channels) of the five blocks; each block ends in a 3x3 max pool of stride 2 (or 1, see above).
VGG16_BLOCKS = ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512))


def caffe_pool_padding(size: int, window: int, stride: int, pad: int) -> tuple[int, int]:
  """(low, high) padding of a max pool so that it outputs Caffe's number of windows.

  Caffe's PoolingLayer: ceil((size + 2 * pad - window) / stride) + 1 outputs, one fewer if the last
  window would start in the end padding; the extra windows reach past the padded input, which the
  high padding (of -inf, as every max pool's) covers.

  >>> caffe_pool_padding(306, 3, 2, 1), caffe_pool_padding(321, 3, 2, 1)
  ((1, 2), (1, 1))
  """
  out = -(-(size + 2 * pad - window) // stride) + 1
  if pad and (out - 1) * stride >= size + pad:
    out -= 1
  return pad, max(pad, (out - 1) * stride + window - size - pad)


def max_pool_caffe(x: jax.Array, stride: int, window: int = 3, pad: int = 1) -> jax.Array:
  """x [B, H, W, C] max-pooled as Caffe's ceil-mode pooling (see caffe_pool_padding)."""
  padding = tuple(caffe_pool_padding(n, window, stride, pad) for n in x.shape[1:3])
  return pool.max_pool(x, window, stride, padding)


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
      x = max_pool_caffe(x, stride)
    features['pool5'] = x
    return features
