"""DeepLab v1's LargeFOV head and DeepLab v2's ASPP-L: fc6 (3x3 atrous) -> fc7 (1x1) -> logits branches.

LargeFOV is one branch at rate 12; ASPP-L is four at rates 6, 12, 18, 24 whose logits are summed (v2
section 3.1, Fig. 4). Rates are given at output stride 8, the stride both papers use. Convs carry biases
and no BatchNorm, as the Caffe models.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvImplLike
from deeplab_jax.ops.atrous import AtrousConv


class FCBranch(nn.Module):
  """fc6 3x3 at `rate` -> ReLU -> dropout -> fc7 1x1 -> ReLU -> dropout -> fc8 1x1 logits.

  With features=0 the branch is a single 3x3 atrous conv straight to the logits, as in the released
  v2 ResNet-101 model (its ASPP branches fc1_c0..c3 are 3x3 convs from res5c to the classes).
  """
  num_classes: int
  rate: int
  features: int = 1024
  dropout_rate: float = 0.5
  train: bool = False
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, h, w, C] -> logits [B, h, w, num_classes]."""
    logits_init = nn.initializers.normal(0.01)
    if not self.features:
      return AtrousConv(self.num_classes, 3, self.rate, use_bias=True, dtype=self.dtype,
                        kernel_init=logits_init, impl=self.conv_impl, name='fc6')(x)
    x = AtrousConv(self.features, 3, self.rate, use_bias=True, dtype=self.dtype, impl=self.conv_impl,
                   name='fc6')(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not self.train)(nn.relu(x))
    x = AtrousConv(self.features, 1, use_bias=True, dtype=self.dtype, impl=self.conv_impl, name='fc7')(x)
    x = nn.Dropout(self.dropout_rate, deterministic=not self.train)(nn.relu(x))
    return AtrousConv(self.num_classes, 1, use_bias=True, dtype=self.dtype, kernel_init=logits_init,
                      impl=self.conv_impl, name='fc8')(x)


class LargeFOVHead(nn.Module):
  """Sum of one FCBranch per rate: LargeFOV with rates (12,), ASPP-L with (6, 12, 18, 24).

  Returns logits [B, h, w, num_classes] at the backbone's output stride.
  """
  num_classes: int
  rates: Sequence[int]
  features: int = 1024
  dropout_rate: float = 0.5
  train: bool = False
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  @nn.compact
  def __call__(self, x: jax.Array, low_level: jax.Array | None = None) -> jax.Array:
    """x [B, h, w, C] (low_level unused) -> summed branch logits [B, h, w, num_classes]."""
    del low_level
    branches = [FCBranch(self.num_classes, rate, self.features, self.dropout_rate, self.train,
                         self.dtype, self.conv_impl, name=f'branch{i}')(x)
                for i, rate in enumerate(self.rates)]
    return sum(branches[1:], branches[0])
