"""MobileNetV2 against the official DeepLab graph: channels at width 0.5 and the decoder's tap.

The tables are the official graph's variables (research/deeplab mobilenet_v2 + decoder, built with
--depth_multiplier=0.5): MobilenetV2/Conv/weights [3, 3, 3, 16], then per expanded_conv_N its
(expand, depthwise, project) channels, and decoder/feature_projection0/weights [1, 1, 72, 48].
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from deeplab_jax.models import layers, mobilenet
from deeplab_jax.models.deeplab import build_model

OFFICIAL_STEM_AT_HALF = 16
# (expand, depthwise, project) output channels of expanded_conv, expanded_conv_1 .. _16; expand None
# where the unit has no expand conv.
OFFICIAL_UNITS_AT_HALF = [
    (None, 16, 8), (48, 48, 12), (72, 72, 12), (72, 72, 16), (96, 96, 16), (96, 96, 16), (96, 96, 32),
    (192, 192, 32), (192, 192, 32), (192, 192, 32), (192, 192, 48), (288, 288, 48), (288, 288, 48),
    (288, 288, 80), (480, 480, 80), (480, 480, 80), (480, 480, 160)]
OFFICIAL_DECODER_PROJECTION_INPUT = {0.5: 72, 1.0: 144}  # layer_4/depthwise_output


def unit_channels(params):
  units = sorted((k for k in params if k.startswith('stage')),
                 key=lambda k: tuple(int(n) for n in k[len('stage'):].split('_unit')))
  table = []
  for name in units:
    p = params[name]
    expand = p['expand']['kernel'].shape[-1] if 'expand' in p else None
    table.append((expand, p['depthwise']['kernel'].shape[-1], p['project']['kernel'].shape[-1]))
  return table


def test_channels_at_half_width_are_the_official_ones():
  module = mobilenet.MobileNetV2(layers.make_norm(False, 0.997, 1e-3), 16, 0.5)
  variables = jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 33, 33, 3),
                                                                                  jnp.float32))
  assert variables['params']['stem']['kernel'].shape == (3, 3, 3, OFFICIAL_STEM_AT_HALF)
  assert unit_channels(variables['params']) == OFFICIAL_UNITS_AT_HALF


def test_torchvision_rounding_keeps_multiples_of_8():
  module = mobilenet.MobileNetV2(layers.make_norm(False, 0.997, 1e-3), 16, 0.5,
                                 channel_rounding='torchvision')
  variables = jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 33, 33, 3),
                                                                                  jnp.float32))
  assert all(c % 8 == 0 for unit in unit_channels(variables['params']) for c in unit if c)


@pytest.mark.parametrize('width', sorted(OFFICIAL_DECODER_PROJECTION_INPUT))
def test_decoder_reads_layer_4_depthwise_output(width):
  config = base.get_config()
  model = config.model
  model.backbone, model.multi_grid, model.decoder = 'mobilenetv2', (), True
  model.mobilenet.width_multiplier = width
  model.aspp_features = 16
  variables = jax.eval_shape(build_model(config, train=False).init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 33, 33, 3), jnp.float32))
  kernel = variables['params']['head']['low_level_project']['conv']['kernel']
  assert kernel.shape == (1, 1, OFFICIAL_DECODER_PROJECTION_INPUT[width], 48)


def test_low_level_is_the_depthwise_activation_at_stride_4():
  module = mobilenet.MobileNetV2(layers.make_norm(False, 0.997, 1e-3), 16, 0.5)
  images = jax.ShapeDtypeStruct((1, 33, 33, 3), jnp.float32)
  features = jax.eval_shape(module.apply, jax.eval_shape(module.init, jax.random.key(0), images), images)
  assert features['low_level'].shape == (1, 9, 9, 72)
  # The tapped unit returns its depthwise conv after BN and ReLU6, not the projection's output.
  unit = mobilenet.InvertedResidual(12, 72, layers.make_norm(False, 0.997, 1e-3), return_depthwise=True)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 9, 9, 12)), jnp.float32)
  variables = jax.jit(unit.init)(jax.random.key(0), x)
  out, low = jax.jit(unit.apply)(variables, x)
  assert out.shape == (1, 9, 9, 12) and low.shape == (1, 9, 9, 72)
  low = np.asarray(low)
  assert low.min() >= 0 and low.max() <= 6 and (low == 0).any()
