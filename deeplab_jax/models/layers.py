"""Shared building blocks: conv + BatchNorm + ReLU, and bilinear resizing."""
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from deeplab_jax.ops.atrous import AtrousConv

ModuleDef = Callable[..., nn.Module]


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

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, H, W, C] -> [B, H', W', features]."""
    x = AtrousConv(self.features, self.kernel_size, self.rate, self.stride, dtype=self.dtype,
                   name='conv')(x)
    x = self.norm(name='bn')(x)
    return nn.relu(x) if self.relu else x


def resize_bilinear(x: jax.Array, size: tuple[int, int]) -> jax.Array:
  """Bilinear resize of x [B, H, W, C] to [B, *size, C] with half-pixel centres.

  The same sampling as PyTorch's `interpolate(mode='bilinear', align_corners=False)`; no antialiasing,
  so a downscale samples like PyTorch's too.
  """
  if tuple(x.shape[1:3]) == tuple(size):
    return x
  return jax.image.resize(x, (x.shape[0], *size, x.shape[3]), 'bilinear', antialias=False)
