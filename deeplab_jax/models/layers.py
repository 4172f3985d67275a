"""Shared building blocks: conv + BatchNorm + ReLU, bilinear resizing, and the atrous stride plan."""
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.errors import UserError
from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv, ConvImpl

ModuleDef = Callable[..., nn.Module]
# How convs are computed: an ops.atrous.ConvImpl, or an atrous impl name ('auto', 'dilation', ...).
ConvImplLike = ConvImpl | str


OUTPUT_STRIDES = (8, 16, 32)


def atrous_plan(strides: Sequence[int], input_stride: int, output_stride: int, *,
                dilate_first: bool) -> list[tuple[int, int]]:
  """(stride, rate) of each layer so that a network's total stride stops at `output_stride`.

  Layers with `strides`, entered at `input_stride`: a stride that would take the total past
  output_stride becomes 1 and multiplies the atrous rate instead. dilate_first: the layer whose stride
  was dropped already runs at the raised rate (torchvision's replace_stride_with_dilation, ResNet and
  MobileNetV3); otherwise it runs at the current rate and the layers after it at the raised one (the
  official TF DeepLab code, MobileNetV2 and Xception).

  >>> atrous_plan((1, 2, 2, 2), 4, 8, dilate_first=True)
  [(1, 1), (2, 1), (1, 2), (1, 4)]
  >>> atrous_plan((1, 2, 2, 2), 4, 8, dilate_first=False)
  [(1, 1), (2, 1), (1, 1), (1, 2)]
  """
  if output_stride not in OUTPUT_STRIDES:
    raise UserError(f'output stride must be one of {OUTPUT_STRIDES}, got {output_stride}.')
  current, rate, plan = input_stride, 1, []
  for stride in strides:
    if current * stride > output_stride:
      raised = rate * stride
      plan.append((1, raised if dilate_first else rate))
      rate = raised
    else:
      current *= stride
      plan.append((stride, rate))
  return plan


def make_norm(train: bool, momentum: float, epsilon: float, dtype: Any = jnp.float32,
              frozen: bool = False, axis_name: str | None = None) -> ModuleDef:
  """A BatchNorm factory.

  Under `jit` over a mesh the batch axis is global, so the statistics are over the global batch with no
  axis name; `axis_name` is for the pmap front. `frozen` uses the moving statistics even in training
  (DeepLab's fine_tune_batch_norm=False).
  """
  return functools.partial(nn.BatchNorm, use_running_average=(not train) or frozen,
                           momentum=momentum, epsilon=epsilon, dtype=dtype, axis_name=axis_name)


class ConvBNReLU(nn.Module):
  """Atrous k x k conv (no bias) -> BatchNorm -> optional ReLU."""
  features: int
  norm: ModuleDef
  kernel_size: int = 1
  rate: int = 1
  stride: int = 1
  relu: bool = True
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H', W', features]."""
    x = AtrousConv(self.features, self.kernel_size, self.rate, self.stride, dtype=self.dtype,
                   impl=self.conv_impl, name='conv')(x)
    x = self.norm(name='bn')(x)
    return nn.relu(x) if self.relu else x


class SeparableConvBNReLU(nn.Module):
  """Atrous depthwise-separable conv: depthwise k x k (rate, stride) then pointwise 1x1 to `features`.

  depthwise_bn=True is DeepLabv3+'s form: depthwise -> BN (-> ReLU) -> pointwise -> BN (-> ReLU), the
  ReLUs present when `relu` is set. depthwise_bn=False is segmentation_models_pytorch's: depthwise ->
  pointwise -> BN (-> ReLU), with no normalisation between the two convs.
  """
  features: int
  norm: ModuleDef
  kernel_size: int = 3
  rate: int = 1
  stride: int = 1
  relu: bool = True
  depthwise_bn: bool = True
  dtype: Any = jnp.float32
  conv_impl: ConvImplLike = 'auto'  # see ops.atrous.AtrousDepthwiseConv.impl

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H', W', features]."""
    x = AtrousDepthwiseConv(self.kernel_size, self.rate, self.stride, dtype=self.dtype,
                            impl=self.conv_impl, name='depthwise')(x)
    if self.depthwise_bn:
      x = self.norm(name='depthwise_bn')(x)
      x = nn.relu(x) if self.relu else x
    x = AtrousConv(self.features, 1, dtype=self.dtype, impl=self.conv_impl, name='pointwise')(x)
    x = self.norm(name='bn')(x)
    return nn.relu(x) if self.relu else x


def conv3x3(features: int, norm: ModuleDef, rate: int = 1, separable: bool = False,
            depthwise_bn: bool = True, dtype: Any = jnp.float32, name: str | None = None,
            conv_impl: ConvImplLike = 'auto') -> nn.Module:
  """A 3x3 conv -> BN -> ReLU at `rate`, ordinary or depthwise-separable (as the ASPP and decoder use)."""
  if separable:
    return SeparableConvBNReLU(features, norm, 3, rate, depthwise_bn=depthwise_bn, dtype=dtype,
                               conv_impl=conv_impl, name=name)
  return ConvBNReLU(features, norm, 3, rate, dtype=dtype, conv_impl=conv_impl, name=name)


def remat_unit(unit: type[nn.Module], remat: bool) -> type[nn.Module]:
  """`unit` itself, or (remat=True) a version that keeps only its input for the backward pass.

  Wrapping each unit, not the whole backbone, is what saves memory: the backward pass recomputes one
  unit's activations at a time, so the peak holds the units' inputs plus one unit's insides (at about
  one extra forward pass of compute). Convolutions are not dot_generals, so a dots_* policy would save
  nothing more than nothing_saveable does.
  """
  if not remat:
    return unit
  return nn.remat(unit, policy=jax.checkpoint_policies.nothing_saveable)


def scaled_size(size: tuple[int, int], scale: float, corner_aligned: bool) -> tuple[int, int]:
  """(H, W) of an image of `size` resized by `scale`.

  corner_aligned: (d - 1) * scale + 1, rounded, as Caffe's Interp layer in DeepLab v2's multi-scale
  inputs (513 at 0.75 -> 385, at 0.5 -> 257), which keeps the corner pixels' positions. Otherwise
  d * scale rounded (at least 1), the half-pixel convention.

  >>> scaled_size((513, 40), 0.75, corner_aligned=True), scaled_size((513, 40), 0.75, corner_aligned=False)
  ((385, 30), (385, 30))
  """
  if corner_aligned:
    return tuple(int(round((d - 1) * scale)) + 1 for d in size)
  return tuple(max(1, int(round(d * scale))) for d in size)


def resize_bilinear(x: jax.Array, size: tuple[int, int], align_corners: bool = False) -> jax.Array:
  """Bilinear resize of x [B, H, W, C] to [B, *size, C].

  Half-pixel centres by default: the same sampling as PyTorch's `interpolate(mode='bilinear',
  align_corners=False)`; no antialiasing, so a downscale samples like PyTorch's too. align_corners=True
  maps corner pixels onto corner pixels, as PyTorch's `align_corners=True` (segmentation_models_pytorch's
  upsampling), which converted smp weights need to compute the same function.
  """
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  if align_corners:
    return _resize_axis_align_corners(_resize_axis_align_corners(x, size[0], 1), size[1], 2)
  return jax.image.resize(x, (x.shape[0], *size, x.shape[3]), 'bilinear', antialias=False)


def _resize_axis_align_corners(x: jax.Array, size: int, axis: int) -> jax.Array:
  """Linear interpolation of x along `axis` to `size` samples, first and last samples on the corners."""
  length = x.shape[axis]
  if length == size:
    return x
  scale = (length - 1) / (size - 1) if size > 1 else 0.0
  position = jnp.arange(size, dtype=jnp.float32) * scale
  low = jnp.clip(jnp.floor(position).astype(jnp.int32), 0, length - 1)
  high = jnp.minimum(low + 1, length - 1)
  shape = [1] * x.ndim
  shape[axis] = size
  frac = (position - low).reshape(shape).astype(x.dtype)
  return jnp.take(x, low, axis=axis) * (1 - frac) + jnp.take(x, high, axis=axis) * frac
