"""The fast depthwise and 1x1 convs equal lax.conv_general_dilated, outputs and gradients."""
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.ops import conv

DN = ('NHWC', 'HWIO', 'NHWC')


def library_conv(x, kernel, rate, stride, groups):
  pad = [conv.same_padding(kernel.shape[0], rate)] * 2
  return lax.conv_general_dilated(x, kernel, (stride, stride), pad, rhs_dilation=(rate, rate),
                                  dimension_numbers=DN, feature_group_count=groups)


def assert_same_function(fast, reference, x, kernel):
  """Outputs, and gradients of a random projection of them, within float32 rounding."""
  y = jax.jit(fast)(x, kernel)
  want = jax.jit(reference)(x, kernel)
  assert y.shape == want.shape
  np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5 * float(jnp.abs(want).max()))
  probe = jax.random.normal(jax.random.key(9), want.shape)
  grads = jax.jit(jax.grad(lambda x, k: jnp.sum(fast(x, k) * probe), (0, 1)))(x, kernel)
  expected = jax.jit(jax.grad(lambda x, k: jnp.sum(reference(x, k) * probe), (0, 1)))(x, kernel)
  for got, ref in zip(grads, expected):
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * float(jnp.abs(ref).max()))


@pytest.mark.parametrize('k,rate,stride,size', [(3, 1, 1, (9, 9)), (3, 1, 2, (9, 8)), (3, 2, 1, (11, 7)),
                                                (5, 2, 1, (13, 13)), (3, 6, 1, (10, 13)),
                                                (3, 36, 1, (9, 9)), (5, 1, 2, (12, 15)),
                                                (3, 3, 2, (17, 16)), (3, 12, 1, (13, 13)),
                                                (3, 24, 1, (13, 40)), (5, 6, 2, (13, 14)),
                                                (4, 1, 1, (9, 9))])
def test_depthwise_taps_equal_the_grouped_conv(k, rate, stride, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 6))
  kernel = jax.random.normal(jax.random.key(1), (k, k, 1, 6))
  assert_same_function(lambda x, w: conv.depthwise_taps(x, w, rate, stride),
                       lambda x, w: library_conv(x, w, rate, stride, 6), x, kernel)


def test_taps_that_read_only_padding_are_left_out_and_not_padded_for():
  assert conv._tap_plan((4, 13, 13, 8), 3, 36, 1) == ((0, 0), (0, 0), [(4, 0, 0)])
  pad_h, pad_w, starts = conv._tap_plan((4, 13, 13, 8), 3, 12, 1)
  assert pad_h == pad_w == (12, 12) and len(starts) == 9
  # Rows: the centre tap only; columns (40 wide): all three.
  pad_h, pad_w, starts = conv._tap_plan((4, 13, 40, 8), 3, 24, 1)
  assert pad_h == (0, 0) and pad_w == (24, 24) and [t for t, _, _ in starts] == [3, 4, 5]


@pytest.mark.parametrize('k,rate,stride', [(3, 1, 1), (5, 2, 2), (5, 3, 1), (3, 1, 2)])
def test_kernel_gradient_in_row_chunks_equals_the_grouped_conv(k, rate, stride, monkeypatch):
  """Images larger than a chunk: the kernel gradient's scan splits each into bands of output rows
  (here a few rows each, the last band partly past the image)."""
  monkeypatch.setattr(conv, '_CHUNK_BYTES', 1024)
  monkeypatch.setattr(conv, '_ROW_CHUNK_BYTES', 1024)
  x = jax.random.normal(jax.random.key(2), (2, 23, 13, 16))
  kernel = jax.random.normal(jax.random.key(3), (k, k, 1, 16))
  assert_same_function(lambda x, w: conv.depthwise_taps(x, w, rate, stride),
                       lambda x, w: library_conv(x, w, rate, stride, 16), x, kernel)


@pytest.mark.parametrize('stride,size', [(1, (7, 9)), (2, (7, 9)), (2, (8, 8))])
def test_pointwise_dot_equals_the_1x1_conv(stride, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 5))
  kernel = jax.random.normal(jax.random.key(1), (1, 1, 5, 7))
  assert_same_function(lambda x, w: conv.pointwise_dot(x, w, stride),
                       lambda x, w: library_conv(x, w, 1, stride, 1), x, kernel)


def test_wrong_kernels_are_refused():
  with pytest.raises(ValueError, match='depthwise_taps'):
    conv.depthwise_taps(jnp.zeros((1, 5, 5, 4)), jnp.zeros((3, 3, 1, 8)))
  with pytest.raises(ValueError, match='pointwise_dot'):
    conv.pointwise_dot(jnp.zeros((1, 5, 5, 4)), jnp.zeros((3, 3, 4, 8)))


@pytest.mark.parametrize('k,rate,size', [(3, 1, (9, 9)), (3, 2, (11, 7)), (3, 6, (13, 13)),
                                         (3, 12, (13, 13)), (3, 36, (13, 10)), (5, 2, (8, 9))])
def test_atrous_taps_equal_the_dilated_conv(k, rate, size):
  x = jax.random.normal(jax.random.key(0), (2, *size, 5))
  kernel = jax.random.normal(jax.random.key(1), (k, k, 5, 4))
  assert_same_function(lambda x, w: conv.atrous_taps(x, w, rate),
                       lambda x, w: library_conv(x, w, rate, 1, 1), x, kernel)
