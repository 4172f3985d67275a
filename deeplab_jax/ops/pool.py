"""Max pooling as strided slices, with a gradient that XLA:CPU runs as a few fused loops.

`flax.linen.max_pool`'s gradient is XLA's select-and-scatter, which XLA:CPU expands into a variadic
reduce-window carrying an index per dimension and a scatter: for ResNet's stem pool (3x3, stride 2)
that was ~10x the pool's forward time in a v3+ ResNet-101 train step (BENCHMARKS.md). Here the pool is
the max of its k² strided views of the -inf-padded input, and its gradient sends each output's
cotangent to the first tap (in window order, as select-and-scatter and PyTorch do) that holds the
maximum; the input gradient is assembled phase by phase (input rows r with r mod stride = p) from
shifted slices, never a scatter. Outputs and gradients equal flax's, ties included.

Measured on XLA:CPU only (the stem pool's forward + backward 50 -> 6 ms, BENCHMARKS.md), so other
platforms keep flax's pool (cuDNN / TPU reduce-window) until a measurement there says otherwise.
"""
import functools

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp

Padding = tuple[tuple[int, int], tuple[int, int]]
SLICED_PLATFORMS = ('cpu',)  # where max_pool runs as slices; elsewhere flax's pool


def max_pool(x: jax.Array, window: int, stride: int, padding: Padding) -> jax.Array:
  """`flax.linen.max_pool(x, (window, window), (stride, stride), padding)` of x [B, H, W, C].

  Args:
    x: [B, H, W, C], a float dtype.
    window: k, the square window's side.
    stride: s, both axes.
    padding: ((top, bottom), (left, right)), -inf padding as flax's.

  Returns:
    [B, (H + top + bottom - k) // s + 1, (W + left + right - k) // s + 1, C].
  """
  (top, bottom), (left, right) = padding
  if min(top, bottom, left, right) < 0 or window < 1 or stride < 1:
    raise ValueError(f'max_pool: window {window}, stride {stride}, padding {padding}; expected a '
                     'positive window and stride and non-negative padding.')
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f'max_pool: x is {x.dtype}; expected a float dtype (the padding is -inf).')
  if jax.default_backend() not in SLICED_PLATFORMS:
    return nn.max_pool(x, (window, window), (stride, stride), ((top, bottom), (left, right)))
  return _max_pool(x, window, stride, ((top, bottom), (left, right)), x.shape[1:3])


def plain_max_pool(x: jax.Array, window: int, stride: int, padding: Padding) -> jax.Array:
  """max_pool's numbers without its custom gradient: plain pads, slices and maxima, for tracers that
  take only primitive ops (ONNX export)."""
  return _forward(x, window, stride, padding)


def _output_shape(x_shape, window, stride, padding):
  batch, height, width, channels = x_shape
  (top, bottom), (left, right) = padding
  return (batch, (height + top + bottom - window) // stride + 1,
          (width + left + right - window) // stride + 1, channels)


def _taps(x, window, stride, padding):
  """The k² strided views of the -inf-padded input, in window order (row-major)."""
  out = _output_shape(x.shape, window, stride, padding)
  padded = jnp.pad(x, ((0, 0), *padding, (0, 0)), constant_values=-jnp.inf)
  return [lax.slice(padded, (0, i, j, 0), (out[0], i + (out[1] - 1) * stride + 1,
                                            j + (out[2] - 1) * stride + 1, out[3]), (1, stride, stride, 1))
          for i in range(window) for j in range(window)]


def _forward(x, window, stride, padding):
  taps = _taps(x, window, stride, padding)
  return functools.reduce(jnp.maximum, taps)


def _forward_with_index(x, window, stride, padding):
  """(the pool, the window index of the first tap that holds each output's maximum), one pass."""
  taps = _taps(x, window, stride, padding)
  index_dtype = jnp.int8 if window * window < 128 else jnp.int32
  best, index = taps[0], jnp.zeros(taps[0].shape, index_dtype)
  for t, tap in enumerate(taps[1:], 1):
    larger = tap > best  # strictly: an equal later tap does not take it
    best, index = jnp.where(larger, tap, best), jnp.where(larger, jnp.asarray(t, index_dtype), index)
  return best, index


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _max_pool(x, window, stride, padding, size):
  return _forward(x, window, stride, padding)


def _max_pool_fwd(x, window, stride, padding, size):
  return _forward_with_index(x, window, stride, padding)


def _max_pool_bwd(window, stride, padding, size, index, g):
  batch, out_h, out_w, channels = g.shape
  (top, bottom), (left, right) = padding
  # Padded input row a * s + p gets, from tap row i = p + m * s (m = 0, 1, ...), output row a - m:
  # each phase (p, q) of the input is a sum of contiguous shifted slices of g and the index.
  rows = -(-(size[0] + top + bottom) // stride)
  cols = -(-(size[1] + left + right) // stride)
  shift = (window - 1) // stride
  pads = ((0, 0), (shift, max(0, rows - out_h)), (shift, max(0, cols - out_w)), (0, 0))
  g, index = jnp.pad(g, pads), jnp.pad(index, pads, constant_values=-1)
  phases = []
  for p in range(stride):
    for q in range(stride):
      total = jnp.zeros((batch, rows, cols, channels), g.dtype)
      for i in range(p, window, stride):
        for j in range(q, window, stride):
          r0, c0 = shift - (i - p) // stride, shift - (j - q) // stride
          window_g = g[:, r0:r0 + rows, c0:c0 + cols]
          chosen = index[:, r0:r0 + rows, c0:c0 + cols] == i * window + j
          total = total + jnp.where(chosen, window_g, 0)
      phases.append(total)
  # [s, s, B, rows, cols, C] -> [B, rows, s, cols, s, C] -> [B, rows * s, cols * s, C]: phase (p, q)
  # holds padded rows p::s and columns q::s.
  dx = jnp.stack(phases).reshape(stride, stride, batch, rows, cols, channels)
  dx = dx.transpose(2, 3, 0, 4, 1, 5).reshape(batch, rows * stride, cols * stride, channels)
  return (dx[:, top:top + size[0], left:left + size[1]],)


_max_pool.defvjp(_max_pool_fwd, _max_pool_bwd)
