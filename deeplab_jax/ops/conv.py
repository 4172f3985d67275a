"""Depthwise and 1x1 convolutions lowered as XLA:CPU runs them fast, equal to `lax.conv_general_dilated`.

XLA:CPU lowers a depthwise conv (feature_group_count = channels) as a grouped conv with one channel per
group, 10-60x slower forward + backward than PyTorch's (BENCHMARKS.md). A depthwise k x k conv is only
k² shifted multiply-adds over [B, H, W, C], which XLA fuses into a few vectorised loops, forward and
backward; a 1x1 conv is one matmul. Both give the library conv's numbers (same taps, same padding) up
to float rounding; `ops.atrous` picks them per platform from measurements.
"""
import functools

import jax
from jax import lax
import jax.numpy as jnp


def same_padding(kernel_size: int, rate: int) -> tuple[int, int]:
  """Padding (low, high) that keeps the spatial size of a stride-1 conv.

  For odd kernels the padding is symmetric, rate * (k - 1) / 2 on each side, which at stride 2 also
  reproduces PyTorch's `padding=k // 2` (so converted torchvision weights see the same pixels).
  """
  total = rate * (kernel_size - 1)
  return total // 2, total - total // 2


def output_size(size: int, stride: int) -> int:
  """Side of a 'same' conv's output: ceil(size / stride)."""
  return -(-size // stride)


def depthwise_taps(x: jax.Array, kernel: jax.Array, rate: int = 1, stride: int = 1) -> jax.Array:
  """'Same'-padded depthwise conv as the sum of its k² shifted, strided taps.

  Args:
    x: [B, H, W, C].
    kernel: [k, k, 1, C] (depth multiplier 1: the layout of feature_group_count=C).
    rate: dilation rate.
    stride: spatial stride.

  Returns:
    [B, ceil(H / stride), ceil(W / stride), C].
  """
  k, channels = kernel.shape[0], x.shape[-1]
  if kernel.shape != (k, k, 1, channels):
    raise ValueError(f'depthwise_taps: kernel {kernel.shape} is not [k, k, 1, {channels}].')
  return _depthwise(x, kernel.astype(x.dtype), rate, stride)


def _axis_taps(size: int, k: int, rate: int, stride: int) -> tuple[tuple[int, int], dict[int, int]]:
  """One spatial axis of a 'same' conv: the padding (low, high) its taps need, and where each tap that
  reads the image starts in the padded axis ({tap index: start}).

  Output o reads input o * stride + i * rate - low (low: the 'same' padding). A tap whose reads all
  fall in the padding adds only zeros and is left out, and the padding is only what the kept taps
  read: at ASPP's rates on small features (rate 24 or 36 on 13x13) the centre tap alone is kept and
  nothing is padded, where the padded canvas would be (13 + 72)² per channel.
  """
  out = output_size(size, stride)
  low, _ = same_padding(k, rate)
  first = {i: i * rate - low for i in range(k)}
  kept = {i: r for i, r in first.items() if r + (out - 1) * stride >= 0 and r <= size - 1}
  pad_low = max(0, -min(kept.values()))
  pad_high = max(0, max(kept.values()) + (out - 1) * stride - (size - 1))
  return (pad_low, pad_high), {i: r + pad_low for i, r in kept.items()}


def _tap_plan(shape: tuple[int, ...], k: int, rate: int, stride: int):
  """(padding of H, padding of W, [(tap index i * k + j, row start, column start)] of the kept taps)."""
  pad_h, rows = _axis_taps(shape[1], k, rate, stride)
  pad_w, cols = _axis_taps(shape[2], k, rate, stride)
  return pad_h, pad_w, [(i * k + j, r, c) for i, r in rows.items() for j, c in cols.items()]


def _pad_for_taps(x: jax.Array, pad_h, pad_w) -> jax.Array:
  return jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0))) if any(pad_h + pad_w) else x


def _taps(padded: jax.Array, starts, stride: int, out_h: int, out_w: int):
  """The views of `padded` that the output pixels read, one per (tap, row start, column start)."""
  batch, channels = padded.shape[0], padded.shape[-1]
  for _, r, c in starts:
    limit = (batch, r + (out_h - 1) * stride + 1, c + (out_w - 1) * stride + 1, channels)
    yield lax.slice(padded, (0, r, c, 0), limit, (1, stride, stride, 1))


def _forward(x, kernel, rate, stride):
  k, channels = kernel.shape[0], kernel.shape[-1]
  out_h, out_w = output_size(x.shape[1], stride), output_size(x.shape[2], stride)
  weights = kernel.reshape(k * k, channels)
  pad_h, pad_w, starts = _tap_plan(x.shape, k, rate, stride)
  y = None
  for (t, _, _), tap in zip(starts, _taps(_pad_for_taps(x, pad_h, pad_w), starts, stride, out_h, out_w)):
    y = tap * weights[t] if y is None else y + tap * weights[t]
  return y


_CHUNK_BYTES = 1 << 20  # an image's cotangent up to this size is one chunk; larger ones split by rows
_ROW_CHUNK_BYTES = 256 << 10


def _kernel_gradient(x, g, k, rate, stride):
  """d(sum(y * g)) / d kernel: per tap, the sum over batch and pixels of its view of x times g.

  Summed tap by tap over the whole batch, each of the k² sums reads all of x and g from memory. A scan
  over chunks (one image, or a band of an image's output rows when the image is large) runs the k²
  sums of each chunk while its data is in the cache and accumulates them: 1.7-1.9x faster than
  whole-batch sums at 5x5 and atrous depthwise convs, equal at 3x3 rate 1 (BENCHMARKS.md). Taps that
  read only padding get zero.
  """
  batch, _, _, channels = x.shape
  out_h, out_w = g.shape[1:3]
  pad_h, pad_w, starts = _tap_plan(x.shape, k, rate, stride)
  padded = _pad_for_taps(x, pad_h, pad_w)
  row_bytes = out_w * channels * g.dtype.itemsize
  rows = out_h
  if out_h * row_bytes > _CHUNK_BYTES:
    rows = max(1, _ROW_CHUNK_BYTES // ((stride + 1) * row_bytes))
  chunks = -(-out_h // rows)
  # Input rows one chunk of output rows reads (the centre tap starts at row 0 of the padded input).
  span = (rows - 1) * stride + max(r for _, r, _ in starts) + 1
  # Zero cotangent rows past the end add nothing; the input gets the rows those would read.
  g = jnp.pad(g, ((0, 0), (0, chunks * rows - out_h), (0, 0), (0, 0)))
  need = (chunks - 1) * rows * stride + span
  padded = jnp.pad(padded, ((0, 0), (0, max(0, need - padded.shape[1])), (0, 0), (0, 0)))

  def add_chunk(total, index):
    image, chunk = index // chunks, index % chunks
    xs = lax.dynamic_slice(padded, (image, chunk * rows * stride, 0, 0), (1, span, padded.shape[2], channels))
    gs = lax.dynamic_slice(g, (image, chunk * rows, 0, 0), (1, rows, out_w, channels))
    sums = [jnp.sum(tap * gs, (0, 1, 2), dtype=jnp.float32) for tap in _taps(xs, starts, stride, rows, out_w)]
    return total + jnp.stack(sums), None

  total = jnp.zeros((len(starts), channels), jnp.float32)
  total, _ = lax.scan(add_chunk, total, jnp.arange(batch * chunks))
  full = jnp.zeros((k * k, channels), jnp.float32).at[jnp.array([t for t, _, _ in starts])].set(total)
  return full.reshape(k, k, 1, channels)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _depthwise(x, kernel, rate, stride):
  return _forward(x, kernel, rate, stride)


def _depthwise_fwd(x, kernel, rate, stride):
  return _forward(x, kernel, rate, stride), (x, kernel)


def _input_gradient(x, kernel, g, rate, stride):
  """d(sum(y * g)) / dx. For a 3x3 kernel at stride 1 it is the same conv of g with the kernel flipped,
  run as the forward runs (one padded copy, nine fused multiply-adds): 2.5-3x faster forward +
  backward on XLA:CPU than the transpose of the forward's slices, which pads each tap's product (the
  v3+ decoder's 3x3 at 52², 304 channels: 170-196 -> 72-82 ms, BENCHMARKS.md). At 5x5 the flipped
  forward measured 1.4-2x slower than the transpose, so larger kernels and strides keep the latter."""
  k = kernel.shape[0]
  if stride == 1 and k == 3:
    return _forward(g, kernel[::-1, ::-1], rate, 1)
  _, input_vjp = jax.vjp(lambda x: _forward(x, kernel, rate, stride), x)
  return input_vjp(g)[0]


def _depthwise_bwd(rate, stride, residuals, g):
  x, kernel = residuals
  return (_input_gradient(x, kernel, g, rate, stride),
          _kernel_gradient(x, g, kernel.shape[0], rate, stride).astype(kernel.dtype))


_depthwise.defvjp(_depthwise_fwd, _depthwise_bwd)


def pointwise_dot(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
  """1x1 conv as one matmul over the channels: x [B, H, W, Cin], kernel [1, 1, Cin, Cout]
  -> [B, ceil(H / stride), ceil(W / stride), Cout]."""
  if kernel.shape[:2] != (1, 1):
    raise ValueError(f'pointwise_dot: kernel {kernel.shape} is not 1x1.')
  if stride > 1:
    x = x[:, ::stride, ::stride]
  return _pixel_matmul(x, kernel[0, 0].astype(x.dtype))


def _pixel_matmul(x: jax.Array, weights: jax.Array) -> jax.Array:
  """x [B, H, W, Cin] @ weights [Cin, Cout] as a matmul of [B * H * W, Cin] -> [B, H, W, Cout].

  With the pixels as one axis, the weight gradient (autodiff's transpose of this dot) contracts one
  axis, which XLA:CPU does without the transposed copies it writes when it contracts B, H and W (a
  ResNet bottleneck's forward + backward: 1.4x faster; a 3x3 rate-4 conv as taps: 1.26x).
  """
  y = lax.dot_general(x.reshape(-1, x.shape[-1]), weights, (((1,), (0,)), ((), ())))
  return y.reshape(x.shape[:-1] + (weights.shape[-1],))


def atrous_taps(x: jax.Array, kernel: jax.Array, rate: int) -> jax.Array:
  """'Same'-padded stride-1 atrous conv as one matmul per kernel tap, over the rows and columns that tap
  reads inside the image.

  A tap whose offset is a whole image side or more away reads only padding and is skipped: at DeepLab's
  rates (ASPP 12/24/36 on 13x13 or 33x33 features) most of the k² taps are, so the work is that of the
  taps that see the image, while a dilated conv computes over the padded canvas.

  Args:
    x: [B, H, W, Cin].
    kernel: [k, k, Cin, Cout].
    rate: dilation rate.

  Returns:
    [B, H, W, Cout].
  """
  k, height, width = kernel.shape[0], x.shape[1], x.shape[2]
  low, _ = same_padding(k, rate)
  kernel = kernel.astype(x.dtype)
  y = None
  for i in range(k):
    for j in range(k):
      di, dj = i * rate - low, j * rate - low  # output pixel (h, w) reads input (h + di, w + dj)
      h0, h1 = max(0, -di), min(height, height - di)
      w0, w1 = max(0, -dj), min(width, width - dj)
      if h0 >= h1 or w0 >= w1:
        continue
      window = x[:, h0 + di:h1 + di, w0 + dj:w1 + dj]
      tap = _pixel_matmul(window, kernel[i, j])
      tap = jnp.pad(tap, ((0, 0), (h0, height - h1), (w0, width - w1), (0, 0)))
      y = tap if y is None else y + tap
  return y
