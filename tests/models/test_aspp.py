"""ASPP: branch rates per output stride, image pooling, and the dilation actually applied."""
import jax
import jax.numpy as jnp
import numpy as np

from deeplab_jax.models import aspp, layers


def test_rates_double_at_output_stride_8():
  assert aspp.scale_rates((6, 12, 18), 16) == (6, 12, 18)
  assert aspp.scale_rates((6, 12, 18), 8) == (12, 24, 36)
  assert aspp.scale_rates((6, 12, 18), 32) == (3, 6, 9)


def test_branch_receptive_field_follows_rate():
  # The response at the centre to an impulse at offset d: only d in {0, rate} reach it in one 3x3 tap.
  norm = layers.make_norm(False, 0.9, 1e-5)
  module = aspp.ASPP(rates=(6,), norm=norm, features=4, image_pooling=False)
  x = jnp.zeros((1, 31, 31, 2))
  variables = module.init(jax.random.key(0), x)
  base = module.apply(variables, x)
  for offset, reaches in ((6, True), (5, False), (3, False)):
    impulse = x.at[0, 15 + offset, 15, 0].set(10.0)
    changed = not np.allclose(module.apply(variables, impulse)[0, 15, 15], base[0, 15, 15])
    assert changed == reaches, offset


def test_image_pooling_is_constant_over_space():
  norm = layers.make_norm(False, 0.9, 1e-5)
  module = aspp.ImagePooling(8, norm)
  x = jax.random.normal(jax.random.key(0), (2, 7, 9, 3))
  variables = module.init(jax.random.key(1), x)
  y = np.asarray(module.apply(variables, x))
  assert y.shape == (2, 7, 9, 8)
  np.testing.assert_allclose(y, np.broadcast_to(y[:, :1, :1], y.shape))
  assert not np.allclose(y[0], y[1])
