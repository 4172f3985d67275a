"""ops.pool.max_pool equals flax's max_pool, outputs and gradients, ties included."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.ops import pool


@pytest.mark.parametrize('window,stride,padding,size', [
    (3, 2, ((1, 1), (1, 1)), (9, 8)),  # ResNet's stem pool, odd and even sides
    (3, 2, ((1, 1), (1, 1)), (16, 16)),
    (3, 1, ((1, 1), (1, 1)), (7, 10)),  # DeepLab-LargeFOV's stride-1 pools
    (3, 2, ((1, 2), (0, 1)), (11, 6)),  # Caffe's ceil-mode padding
    (2, 2, ((0, 0), (0, 0)), (8, 9)),
    (5, 3, ((2, 2), (2, 2)), (13, 12)),
])
@pytest.mark.parametrize('ties', [False, True])
def test_max_pool_equals_flax(window, stride, padding, size, ties):
  x = jax.random.normal(jax.random.key(0), (2, *size, 3))
  if ties:  # after a ReLU most windows hold several equal zeros; and equal values elsewhere
    x = jnp.round(jax.nn.relu(x) * 2) / 2
  fast = lambda x: pool.max_pool(x, window, stride, padding)
  reference = lambda x: nn.max_pool(x, (window, window), (stride, stride), padding)
  want = jax.jit(reference)(x)
  np.testing.assert_array_equal(jax.jit(fast)(x), want)
  probe = jax.random.normal(jax.random.key(1), want.shape)
  grad = jax.jit(jax.grad(lambda x: jnp.sum(fast(x) * probe)))(x)
  expected = jax.jit(jax.grad(lambda x: jnp.sum(reference(x) * probe)))(x)
  np.testing.assert_allclose(grad, expected, rtol=1e-6, atol=1e-6)


def test_bad_arguments_are_refused():
  with pytest.raises(ValueError, match='non-negative padding'):
    pool.max_pool(jnp.zeros((1, 5, 5, 2)), 3, 2, ((-1, 1), (1, 1)))
  with pytest.raises(ValueError, match='float dtype'):
    pool.max_pool(jnp.zeros((1, 5, 5, 2), jnp.int32), 3, 2, ((1, 1), (1, 1)))
