"""Atrous convolution against a dense numpy convolution with the zero-inserted kernel."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv


def dilate(kernel: np.ndarray, rate: int) -> np.ndarray:
  """Insert rate - 1 zeros between the taps of kernel [k, k, ...]."""
  k = kernel.shape[0]
  out = np.zeros(((k - 1) * rate + 1,) * 2 + kernel.shape[2:], kernel.dtype)
  out[::rate, ::rate] = kernel
  return out


def dense_conv(x: np.ndarray, kernel: np.ndarray, depthwise: bool = False) -> np.ndarray:
  """Stride-1 'same' correlation of x [B, H, W, Cin] with an odd kernel [K, K, Cin|1, Cout], numpy."""
  size = kernel.shape[0]
  pad = size // 2
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  h, w = x.shape[1:3]
  out = 0
  for i in range(size):
    for j in range(size):
      tap = kernel[i, j]
      if not tap.any():
        continue
      window = xp[:, i:i + h, j:j + w, :]
      out = out + (window * tap[0] if depthwise else window @ tap)
  return out


@pytest.mark.parametrize('rate', [1, 2, 6, 12])
@pytest.mark.parametrize('size', [(17, 17), (24, 31), (513, 513)])
def test_atrous_conv_equals_dense_conv_with_zero_inserted_kernel(rate, size):
  rng = np.random.default_rng(rate)
  x = rng.normal(size=(1, *size, 3)).astype(np.float32)
  module = AtrousConv(features=4, kernel_size=3, rate=rate)
  variables = module.init(jax.random.key(0), jnp.asarray(x))
  y = np.asarray(module.apply(variables, jnp.asarray(x)))
  kernel = np.asarray(variables['params']['kernel'], np.float64)
  expected = dense_conv(x.astype(np.float64), dilate(kernel, rate))
  assert y.shape == (1, *size, 4)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('rate', [1, 2, 6, 12])
@pytest.mark.parametrize('size', [(19, 19), (30, 23)])
def test_depthwise_atrous_conv_equals_dense_reference(rate, size):
  rng = np.random.default_rng(10 + rate)
  x = rng.normal(size=(2, *size, 5)).astype(np.float32)
  module = AtrousDepthwiseConv(kernel_size=3, rate=rate)
  variables = module.init(jax.random.key(1), jnp.asarray(x))
  y = np.asarray(module.apply(variables, jnp.asarray(x)))
  kernel = np.asarray(variables['params']['kernel'], np.float64)  # [3, 3, 1, 5]
  expected = dense_conv(x.astype(np.float64), dilate(kernel, rate), depthwise=True)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_strided_conv_pads_like_pytorch():
  # PyTorch's Conv2d(k=3, stride=2, padding=1) on 8 pixels reads pixels -1..7; output i sees 2i-1..2i+1.
  x = np.arange(8, dtype=np.float32).reshape(1, 1, 8, 1)
  module = AtrousConv(features=1, kernel_size=3, stride=2)
  variables = {'params': {'kernel': jnp.ones((3, 3, 1, 1))}}
  y = np.asarray(module.apply(variables, jnp.asarray(x)))[0, 0, :, 0]
  expected = [sum(v for v in (2 * i - 1, 2 * i, 2 * i + 1) if 0 <= v < 8) for i in range(4)]
  np.testing.assert_allclose(y, expected)
