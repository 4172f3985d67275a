"""DeepLabv3's atrous spatial pyramid pooling (ASPP), and the v3 and v3+ (decoder) heads built on it."""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.models.layers import ConvBNReLU, ConvImplLike, ModuleDef, conv3x3, resize_bilinear
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
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.ConvImpl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pooled = jnp.mean(x, axis=(1, 2), keepdims=True)
    pooled = ConvBNReLU(self.features, self.norm, 1, dtype=self.dtype, conv_impl=self.conv_impl,
                        name='conv_bn')(pooled)
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
    separable: atrous depthwise-separable 3x3 branches (DeepLabv3+) instead of ordinary ones.
    depthwise_bn: BN (+ ReLU) between depthwise and pointwise convs of separable branches.

  With no rates and image pooling on, this is the "ASPP-lite" the official code uses for MobileNetV2.
  """
  rates: Sequence[int]
  norm: ModuleDef
  features: int = 256
  image_pooling: bool = True
  dropout_rate: float = 0.1
  train: bool = False
  dtype: Any = jnp.float32
  separable: bool = False
  depthwise_bn: bool = True
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, h, w, C] -> [B, h, w, features]."""
    branches = [ConvBNReLU(self.features, self.norm, 1, dtype=self.dtype, conv_impl=self.conv_impl,
                           name='branch0')(x)]
    for i, rate in enumerate(self.rates):
      branches.append(conv3x3(self.features, self.norm, rate, self.separable, self.depthwise_bn,
                              self.dtype, name=f'branch{i + 1}', conv_impl=self.conv_impl)(x))
    if self.image_pooling:
      branches.append(ImagePooling(self.features, self.norm, self.dtype, conv_impl=self.conv_impl,
                                   name='image_pooling')(x))
    y = jnp.concatenate(branches, axis=-1)
    y = ConvBNReLU(self.features, self.norm, 1, dtype=self.dtype, conv_impl=self.conv_impl, name='project')(y)
    return nn.Dropout(self.dropout_rate, deterministic=not self.train)(y)


class DeepLabV3Head(nn.Module):
  """ASPP on the backbone's last features (+ an optional 3x3 conv), then a 1x1 classifier with bias.

  aspp_post_conv adds 3x3 conv 256 -> BN -> ReLU after the ASPP projection: torchvision's DeepLabHead (an
  ordinary conv) and segmentation_models_pytorch's DeepLabV3Plus (separable when `aspp_separable`).
  Returns logits [B, h, w, num_classes] at the backbone's output stride.
  """
  num_classes: int
  rates: Sequence[int]
  norm: ModuleDef
  aspp_features: int = 256
  image_pooling: bool = True
  dropout_rate: float = 0.1
  train: bool = False
  dtype: Any = jnp.float32
  aspp_separable: bool = False
  separable_depthwise_bn: bool = True
  aspp_post_conv: bool = False
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  def aspp(self, x: jax.Array) -> jax.Array:
    """x [B, h, w, C] -> ASPP features [B, h, w, aspp_features] (this head's part before the classifier)."""
    y = ASPP(self.rates, self.norm, self.aspp_features, self.image_pooling, self.dropout_rate,
             self.train, self.dtype, self.aspp_separable, self.separable_depthwise_bn,
             self.conv_impl, name='aspp')(x)
    if self.aspp_post_conv:
      y = conv3x3(self.aspp_features, self.norm, 1, self.aspp_separable, self.separable_depthwise_bn,
                  self.dtype, name='post_conv')(y)
    return y

  def classify(self, y: jax.Array) -> jax.Array:
    return AtrousConv(self.num_classes, 1, use_bias=True, dtype=self.dtype,
                      kernel_init=nn.initializers.normal(0.01), impl=self.conv_impl, name='logits')(y)

  @nn.compact
  def __call__(self, x: jax.Array, low_level: jax.Array | None = None) -> jax.Array:
    """x [B, h, w, C] (low_level unused) -> logits [B, h, w, num_classes]."""
    del low_level
    return self.classify(self.aspp(x))


class DeepLabV3PlusHead(DeepLabV3Head):
  """The v3 head's ASPP, then DeepLabv3+'s decoder on the stride-4 features, then the classifier.

  Decoder: low-level features -> 1x1 conv to `decoder_low_level_features` (48) -> BN -> ReLU;
  concatenated with the ASPP output bilinearly upsampled to their size; `decoder_convs` 3x3 convs of
  `aspp_features` (two in the paper, one in segmentation_models_pytorch), separable when
  `decoder_separable`. upsample_align_corners: upsample as PyTorch's align_corners=True (smp) instead of
  with half-pixel centres.
  Returns logits [B, H/4, W/4, num_classes].
  """
  decoder_low_level_features: int = 48
  decoder_convs: int = 2
  decoder_separable: bool = True
  upsample_align_corners: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, low_level: jax.Array | None = None) -> jax.Array:
    """x [B, h, w, C], low_level [B, H/4, W/4, C'] -> logits [B, H/4, W/4, num_classes]."""
    y = self.aspp(x)
    low = ConvBNReLU(self.decoder_low_level_features, self.norm, 1, dtype=self.dtype,
                     conv_impl=self.conv_impl, name='low_level_project')(low_level)
    y = resize_bilinear(y, low.shape[1:3], self.upsample_align_corners).astype(low.dtype)
    y = jnp.concatenate([y, low], axis=-1)
    for i in range(self.decoder_convs):
      y = conv3x3(self.aspp_features, self.norm, 1, self.decoder_separable,
                  self.separable_depthwise_bn, self.dtype, name=f'decoder_conv{i + 1}')(y)
    return self.classify(y)


class FCNHead(nn.Module):
  """torchvision's auxiliary FCNHead: 3x3 conv (C/4) -> BN -> ReLU -> dropout -> 1x1 classifier.

  Sits on ResNet stage 3 (1024 channels -> 256) or MobileNetV3-Large's stride-8 features (40 -> 10).
  Returns logits [B, h, w, num_classes].
  """
  num_classes: int
  norm: ModuleDef
  dropout_rate: float = 0.1
  train: bool = False
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.ConvImpl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    y = ConvBNReLU(x.shape[-1] // 4, self.norm, 3, dtype=self.dtype, conv_impl=self.conv_impl,
                   name='conv_bn')(x)
    y = nn.Dropout(self.dropout_rate, deterministic=not self.train)(y)
    return AtrousConv(self.num_classes, 1, use_bias=True, dtype=self.dtype,
                      kernel_init=nn.initializers.normal(0.01), impl=self.conv_impl, name='logits')(y)
