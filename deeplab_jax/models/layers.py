"""Shared building blocks: conv + BatchNorm + ReLU, bilinear resizing, and the atrous stride plan."""
import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def _batch_norm_at(*args, fixed_momentum: float, momentum: float, **kwargs) -> nn.BatchNorm:
  """nn.BatchNorm with fixed_momentum, whatever momentum a backbone's factory sets."""
  del momentum
  return nn.BatchNorm(*args, momentum=fixed_momentum, **kwargs)


def make_norm(train: bool, momentum: float, epsilon: float, dtype: Any = jnp.float32,
              frozen: bool = False, axis_name: str | None = None,
              fixed_momentum: float | None = None) -> ModuleDef:
  """A BatchNorm factory.

  Under `jit` over a mesh the batch axis is global, so the statistics are over the global batch with no
  axis name; `axis_name` is for the pmap front. `frozen` uses the moving statistics even in training
  (DeepLab's fine_tune_batch_norm=False). `fixed_momentum` overrides the momentum of every BatchNorm,
  including those whose backbone sets its own (precise BN's 0: the moving statistics become the batch's).
  """
  keywords = dict(use_running_average=(not train) or frozen, momentum=momentum, epsilon=epsilon,
                  dtype=dtype, axis_name=axis_name)
  if fixed_momentum is None:
    return functools.partial(nn.BatchNorm, **keywords)
  return functools.partial(_batch_norm_at, fixed_momentum=fixed_momentum, **keywords)


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

  corner_aligned: int((d - 1) * scale + 1), the official DeepLab's `scale_dimension` (and Caffe's
  Interp in DeepLab v2's multi-scale inputs): the corner pixels keep their positions, and an OS * k + 1
  side stays of that form (513 at 0.75 -> 385, at 0.5 -> 257). Otherwise d * scale rounded (at least 1),
  the half-pixel convention (513 at 0.5 -> 256, Python's round half to even).

  >>> scaled_size((513, 40), 0.5, corner_aligned=True), scaled_size((513, 40), 0.5, corner_aligned=False)
  ((257, 20), (256, 20))
  """
  if corner_aligned:
    return tuple(max(1, int((d - 1) * scale + 1)) for d in size)
  return tuple(max(1, int(round(d * scale))) for d in size)


def padded_size(size: int, multiple: int, corner_aligned: bool) -> int:
  """The smallest side >= size that a network of total stride `multiple` samples without remainder.

  corner_aligned: multiple * k + 1 (513 for 500 at 32), whose first and last pixels are both on the
  stride-`multiple` feature grid (feature i on pixel multiple * i). Otherwise multiple * k.

  >>> padded_size(500, 32, corner_aligned=True), padded_size(500, 32, corner_aligned=False)
  (513, 512)
  """
  if corner_aligned:
    return -(-(size - 1) // multiple) * multiple + 1
  return -(-size // multiple) * multiple


def resize_bilinear(x: jax.Array, size: tuple[int, int], align_corners: bool = False) -> jax.Array:
  """Bilinear resize of x [B, H, W, C] to [B, *size, C].

  Half-pixel centres by default: the same sampling as PyTorch's `interpolate(mode='bilinear',
  align_corners=False)`; no antialiasing, so a downscale samples like PyTorch's too. align_corners=True
  maps corner pixels onto corner pixels, as PyTorch's `align_corners=True` (segmentation_models_pytorch's
  upsampling), which converted smp weights need to compute the same function, and as the official
  DeepLab's `tf.image.resize_bilinear(..., align_corners=True)` everywhere: with symmetric padding,
  feature i at total stride s sits on input pixel s * i, so between sides s * k + 1 and k + 1 only the
  corner-aligned resize puts every feature back on its pixel (half-pixel misplaces by up to s / 2).
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


def resize_labels_nearest(labels: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Nearest-neighbour, corner-aligned resize of labels [B, H, W] to [B, *size].

  Output pixel i reads input pixel round(i * (H - 1) / (h - 1)): TF's resize_nearest_neighbor with
  align_corners=True, as the official DeepLab subsamples labels with --upsample_logits=False. From an
  OS * k + 1 side to k + 1 it is labels[:, ::OS, ::OS], DeepLab v1/v2's label_shrink (Caffe's Interp at
  whole-pixel positions).
  """
  for axis, (length, out) in enumerate(zip(labels.shape[1:3], size), start=1):
    if length != out:
      scale = (length - 1) / (out - 1) if out > 1 else 0.0
      index = np.minimum(np.floor(np.arange(out) * scale + 0.5).astype(np.int32), length - 1)
      labels = jnp.take(labels, jnp.asarray(index), axis=axis)
  return labels
