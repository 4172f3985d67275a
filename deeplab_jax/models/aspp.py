"""DeepLabv3's atrous spatial pyramid pooling (ASPP) and the head built on it."""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvBNReLU, ModuleDef
from deeplab_jax.ops.atrous import AtrousConv


def scale_rates(rates: Sequence[int], output_stride: int, reference_stride: int = 16) -> tuple[int, ...]:
  """ASPP rates given at `reference_stride`, rescaled to keep the same field of view at `output_stride`.

  (6, 12, 18) at OS 16 become (12, 24, 36) at OS 8, as DeepLabv3 section 3.3 prescribes.
  """
  return tuple(max(1, r * reference_stride // output_stride) for r in rates)


class ImagePooling(nn.Module):
  """Global average pool -> 1x1 conv -> BN -> ReLU -> broadcast back to the input's size."""
  features: int
  norm: ModuleDef
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
    pooled = ConvBNReLU(self.features, self.norm, 1, dtype=self.dtype, name='conv_bn')(pooled)
    # Bilinear upsampling of a 1x1 map is a broadcast.
    return jnp.broadcast_to(pooled, x.shape[:3] + (self.features,))


class ASPP(nn.Module):
  """1x1 branch + one 3x3 atrous branch per rate (+ image pooling), concat, 1x1 projection, dropout.

  Attributes:
    rates: atrous rates of the 3x3 branches at the model's output stride.
    features: channels of every branch and of the projection (256).
    image_pooling: add the image-level branch (DeepLabv3).
    dropout_rate: dropout after the projection.
    train: dropout on (training) or off (inference).
  """
  rates: Sequence[int]
  norm: ModuleDef
  features: int = 256
  image_pooling: bool = True
  dropout_rate: float = 0.1
  train: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, h, w, C] -> [B, h, w, features]."""
    branches = [ConvBNReLU(self.features, self.norm, 1, dtype=self.dtype, name='branch0')(x)]
    for i, rate in enumerate(self.rates):
      branches.append(ConvBNReLU(self.features, self.norm, 3, rate, dtype=self.dtype,
                                 name=f'branch{i + 1}')(x))
    if self.image_pooling:
      branches.append(ImagePooling(self.features, self.norm, self.dtype, name='image_pooling')(x))
    y = jnp.concatenate(branches, axis=-1)
    y = ConvBNReLU(self.features, self.norm, 1, dtype=self.dtype, name='project')(y)
    return nn.Dropout(self.dropout_rate, deterministic=not self.train)(y)


class DeepLabV3Head(nn.Module):
  """ASPP on the backbone's last features, then a 1x1 classifier with bias.

  Returns logits [B, h, w, num_classes] at the backbone's output stride.
  """
  num_classes: int
  rates: Sequence[int]
  norm: ModuleDef
  features: int = 256
  image_pooling: bool = True
  dropout_rate: float = 0.1
  train: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: dict[str, jax.Array]) -> jax.Array:
    y = ASPP(self.rates, self.norm, self.features, self.image_pooling, self.dropout_rate, self.train,
             self.dtype, name='aspp')(features['stage4'])
    return AtrousConv(self.num_classes, 1, use_bias=True, dtype=self.dtype,
                      kernel_init=nn.initializers.normal(0.01), name='logits')(y)
