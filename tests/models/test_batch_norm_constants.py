"""BatchNorm decay and epsilon per part, as the official DeepLab code sets them.

From research/deeplab: core/feature_extractor.py extract_features (ResNet arg scope decay 0.95,
epsilon 1e-5; Xception decay 0.9997, epsilon 1e-3; MobileNetV2 slim training_scope decay 0.997 with
slim.batch_norm's default epsilon 0.001) and model.py (ASPP, image pooling and decoder: decay 0.9997,
epsilon 1e-5). Flax's BatchNorm momentum is TF's decay.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from configs import base
from deeplab_jax.models.deeplab import build_model

HEAD = (0.9997, 1e-5)
OFFICIAL_BACKBONE = {'resnet101': (0.95, 1e-5), 'xception65': (0.9997, 1e-3), 'mobilenetv2': (0.997, 1e-3)}


def batch_norm_constants(config):
  """{'backbone' | 'head': {(momentum, epsilon)}} over every BatchNorm the model calls."""
  found = {}

  def interceptor(next_fun, args, kwargs, context):
    if isinstance(context.module, nn.BatchNorm) and context.method_name == '__call__':
      part = context.module.path[0]
      found.setdefault(part, set()).add((context.module.momentum, context.module.epsilon))
    return next_fun(*args, **kwargs)

  model = build_model(config, train=True)
  images = jax.ShapeDtypeStruct((2, 33, 33, 3), jnp.float32)
  with nn.intercept_methods(interceptor):
    jax.eval_shape(lambda x: model.init_with_output(jax.random.key(0), x), images)
  return found


def small(backbone, decoder=True):
  config = base.get_config()
  model = config.model
  model.backbone, model.decoder = backbone, decoder
  model.resnet.blocks, model.resnet.width = (1, 1, 1, 3), 8
  model.xception.middle_units = 1
  model.multi_grid = (1, 2, 4) if backbone != 'mobilenetv2' else ()
  model.aspp_features, model.decoder_low_level_features = 16, 8
  return config


@pytest.mark.parametrize('backbone', sorted(OFFICIAL_BACKBONE))
def test_backbone_and_head_batch_norm_are_the_official_ones(backbone):
  found = batch_norm_constants(small(backbone))
  assert found == {'backbone': {OFFICIAL_BACKBONE[backbone]}, 'head': {HEAD}}


def test_overrides_reach_only_their_part():
  config = small('resnet101')
  config.model.backbone_bn_momentum, config.model.backbone_bn_epsilon = 0.9, 1e-3
  config.model.bn_momentum = 0.99
  assert batch_norm_constants(config) == {'backbone': {(0.9, 1e-3)}, 'head': {(0.99, 1e-5)}}


def test_torchvision_mobilenet_v3_keeps_torchvisions_epsilon():
  # torchvision's MobileNetV3 norm_layer: BatchNorm2d(eps=0.001, momentum=0.01).
  from configs.pretrained import torchvision_deeplabv3
  config = torchvision_deeplabv3.get_config('mobilenet_v3_large')
  config.model.mobilenet.width_multiplier = 0.35
  assert batch_norm_constants(config)['backbone'] == {(0.99, 1e-3)}
