"""VGG-16's pools round up as Caffe's PoolingLayer (DeepLab v1/v2's prototxts: 3x3, pad 1, stride 2 or 1).

Caffe: out = ceil((in + 2 * pad - kernel) / stride) + 1, minus one if the last window starts in the end
padding. By hand for v1's 306 crop: pool1 ceil(305 / 2) + 1 = 154, pool2 ceil(153 / 2) + 1 = 78, pool3
ceil(77 / 2) + 1 = 40, pool4/pool5 (stride 1) 40; for 321: 161, 81, 41 (rounding down agrees there).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.models import vgg


@pytest.mark.parametrize('size, conv2, conv3, pool5', [(306, 154, 78, 40), (321, 161, 81, 41),
                                                      (100, 51, 26, 14)])
def test_feature_sizes_are_caffes(size, conv2, conv3, pool5):
  module = vgg.VGG16(8)
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  features = jax.eval_shape(module.apply, jax.eval_shape(module.init, jax.random.key(0), images), images)
  assert features['conv2'].shape[1] == conv2
  assert features['conv3'].shape[1] == conv3
  assert features['pool5'].shape[1:3] == (pool5, pool5)


def test_ceil_mode_pool_by_hand():
  # 1 x 4 input, 3-wide windows at stride 2 with pad 1: Caffe has ceil(3 / 2) + 1 = 3 windows,
  # [-1, 1], [1, 3], [3, 5]; the last reads x[3] and padding only.
  x = jnp.asarray([[1., 5., 2., 7.]]).reshape(1, 1, 4, 1)
  out = vgg.max_pool_caffe(jnp.broadcast_to(x, (1, 4, 4, 1)), 2)
  np.testing.assert_array_equal(out[0, 0, :, 0], [5., 7., 7.])
  assert out.shape == (1, 3, 3, 1)
