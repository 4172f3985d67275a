"""Atrous (dilated) convolution as Flax linen modules.

Atrous convolution samples its input with holes: a k x k kernel at rate r reads pixels r apart, covering
(k - 1) * r + 1 pixels per side with only k * k weights. It is `lax.conv_general_dilated` with
`rhs_dilation=(r, r)`, in NHWC / HWIO layout.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')


def same_padding(kernel_size: int, rate: int) -> tuple[int, int]:
  """Padding (low, high) that keeps the spatial size of a stride-1 conv.

  For odd kernels the padding is symmetric, rate * (k - 1) / 2 on each side, which at stride 2 also
  reproduces PyTorch's `padding=k // 2` (so converted torchvision weights see the same pixels).
  """
  total = rate * (kernel_size - 1)
  return total // 2, total - total // 2


def atrous_conv(x: jax.Array, kernel: jax.Array, rate: int = 1, stride: int = 1,
                feature_group_count: int = 1) -> jax.Array:
  """Atrous convolution of x [B, H, W, Cin] with kernel [k, k, Cin / groups, Cout]."""
  padding = [same_padding(kernel.shape[0], rate), same_padding(kernel.shape[1], rate)]
  return lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride), padding=padding, rhs_dilation=(rate, rate),
      dimension_numbers=_DIMENSION_NUMBERS, feature_group_count=feature_group_count)


class AtrousConv(nn.Module):
  """k x k convolution at dilation `rate`; at stride 1 the output keeps the input's size.

  Attributes:
    features: output channels.
    kernel_size: k (square kernels).
    rate: dilation rate r; 1 is an ordinary convolution.
    stride: spatial stride.
    use_bias: add a bias (False when a BatchNorm follows).
    dtype: computation dtype (parameters stay float32).
  """
  features: int
  kernel_size: int = 3
  rate: int = 1
  stride: int = 1
  use_bias: bool = False
  dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      2.0, 'fan_out', 'normal')

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, Cin] -> [B, H', W', features]."""
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features), jnp.float32)
    y = atrous_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.rate, self.stride)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32).astype(self.dtype)
    return y


class AtrousDepthwiseConv(nn.Module):
  """Depthwise k x k convolution at dilation `rate` (one filter per input channel).

  The kernel is [k, k, 1, C * depth_multiplier], the layout of `feature_group_count=C`.
  """
  kernel_size: int = 3
  rate: int = 1
  stride: int = 1
  depth_multiplier: int = 1
  use_bias: bool = False
  dtype: jnp.dtype = jnp.float32
  kernel_init: nn.initializers.Initializer = nn.initializers.variance_scaling(
      1.0, 'fan_in', 'normal')

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H', W', C * depth_multiplier]."""
    k, channels = self.kernel_size, x.shape[-1]
    out = channels * self.depth_multiplier
    kernel = self.param('kernel', self.kernel_init, (k, k, 1, out), jnp.float32)
    y = atrous_conv(x.astype(self.dtype), kernel.astype(self.dtype), self.rate, self.stride,
                    feature_group_count=channels)
    if self.use_bias:
      y = y + self.param('bias', nn.initializers.zeros, (out,), jnp.float32).astype(self.dtype)
    return y

