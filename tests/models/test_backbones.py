"""The backbone registry: every entry builds, its feature taps exist at their strides, multi-grid checks."""
import jax
import jax.numpy as jnp
import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.models import backbones, layers
from tests.conftest import tiny_config

SIZE = 65  # OS * k + 1: every stride's grid ends on the last pixel (VGG's pools round up, as Caffe's)
AUX_STRIDE_AT_OS16 = {'resnet50': 16, 'resnet101': 16, 'mobilenetv3_large': 8}


def tiny_backbone_config(name):
  config = tiny_config()
  model = config.model
  model.backbone, model.multi_grid, model.resnet.blocks = name, (), (1, 1, 1, 1)
  model.xception.middle_units, model.mobilenet.width_multiplier = 1, 0.25
  return model


@pytest.mark.parametrize('name', sorted(backbones.BACKBONES))
def test_taps_are_features_at_their_strides(name):
  entry = backbones.get(name)
  context = backbones.Context(layers.make_norm(False, 0.9997, 1e-5), 16, jnp.float32, 'dilation', False)
  module = backbones.build(tiny_backbone_config(name), context)
  images = jax.ShapeDtypeStruct((1, SIZE, SIZE, 3), jnp.float32)
  variables = jax.eval_shape(module.init, jax.random.key(0), images)
  features = jax.eval_shape(module.apply, variables, images)
  assert features[entry.out].shape[1] == (SIZE - 1) // 16 + 1
  assert features[entry.low_level].shape[1] == (SIZE - 1) // 4 + 1
  if entry.aux:  # ResNet stage 3 (stride 16 at OS 16), MobileNetV3-Large's 40-channel unit (stride 8)
    assert features[entry.aux].shape[1] == (SIZE - 1) // AUX_STRIDE_AT_OS16[name] + 1
  assert entry.normalization in ('imagenet', 'inception')


def test_unknown_backbone_lists_the_known_ones():
  with pytest.raises(UserError, match='resnet50.*xception65'):
    backbones.get('resnet18')


@pytest.mark.parametrize('name,rates,ok', [('resnet50', (1, 2, 4), True), ('resnet50', (1, 2), False),
                                           ('xception65', (1, 2, 4), True), ('mobilenetv2', (1, 2, 4),
                                                                             False)])
def test_multi_grid_needs_one_rate_per_unit(name, rates, ok):
  model = tiny_backbone_config(name)
  model.resnet.blocks, model.multi_grid = (), rates  # resnet50's standard units: 3 in the last stage
  if ok:
    backbones.check_multi_grid(model)
  else:
    with pytest.raises(UserError, match='multi_grid'):
      backbones.check_multi_grid(model)
