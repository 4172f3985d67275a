"""ResNet backbone: output strides, multi-grid rates, shapes and variable counts."""
import jax
import jax.numpy as jnp
import pytest

from configs import base
from deeplab_jax.models import layers, resnet
from deeplab_jax.models.deeplab import build_model

# torchvision resnet101 has 44,549,160 parameters, 2,049,000 of them in the fc layer.
TORCHVISION_RESNET101_WITHOUT_FC = 44_549_160 - 2_049_000


def count(tree) -> int:
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('output_stride, expected', [
    (8, [(1, 1), (2, 1), (1, 2), (1, 4)]),
    (16, [(1, 1), (2, 1), (2, 1), (1, 2)]),
    (32, [(1, 1), (2, 1), (2, 1), (2, 1)]),
])
def test_strides_become_dilations(output_stride, expected):
  assert resnet.stage_strides_and_rates(output_stride) == expected


def test_multi_grid_multiplies_the_last_stage_rate():
  assert resnet.unit_rates(2, 1, 3, (1, 2, 4), 'deeplab') == [2, 4, 8]
  assert resnet.unit_rates(4, 2, 3, (1, 2, 4), 'deeplab') == [4, 8, 16]
  assert resnet.unit_rates(4, 2, 3, None, 'torchvision') == [2, 4, 4]


def backbone(output_stride, stem='torchvision', blocks=(3, 4, 23, 3)):
  norm = layers.make_norm(False, 0.9997, 1e-5)
  return resnet.ResNet(blocks, norm, output_stride, (1, 2, 4), stem=stem)


def feature_shapes(module, height, width):
  variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, height, width, 3)))
  return variables, jax.eval_shape(module.apply, variables, jnp.zeros((1, height, width, 3)))


@pytest.mark.parametrize('output_stride', [8, 16, 32])
@pytest.mark.parametrize('height, width', [(513, 513), (321, 257), (97, 130)])
def test_feature_shapes(output_stride, height, width):
  _, features = feature_shapes(backbone(output_stride), height, width)

  def size(n, stride):  # every stride-2 layer maps n to ceil(n / 2)
    while stride > 1:
      n, stride = -(-n // 2), stride // 2
    return n

  assert features['stage1'].shape == (1, size(height, 4), size(width, 4), 256)
  assert features['stage4'].shape == (1, size(height, output_stride), size(width, output_stride), 2048)


def test_resnet101_variable_count_matches_torchvision():
  variables, _ = feature_shapes(backbone(16), 65, 65)
  n = count(variables['params'])
  assert abs(n - TORCHVISION_RESNET101_WITHOUT_FC) <= 0.001 * TORCHVISION_RESNET101_WITHOUT_FC, n


def test_beta_stem_has_three_3x3_convs():
  variables, features = feature_shapes(backbone(16, 'beta'), 65, 65)
  stem = variables['params']['stem']
  assert sorted(stem) == ['conv1_1', 'conv1_2', 'conv1_3']
  assert [stem[k]['conv']['kernel'].shape for k in sorted(stem)] == [
      (3, 3, 3, 64), (3, 3, 64, 64), (3, 3, 64, 128)]
  assert features['stage1'].shape == (1, 17, 17, 256)


@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_deeplabv3_logits_at_input_size(output_stride):
  config = base.get_config()
  model = build_model(config, train=False, output_stride=output_stride)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 513, 513, 3)))
  out = jax.eval_shape(model.apply, variables, jnp.zeros((2, 321, 257, 3)))
  assert out['logits'].shape == (2, 321, 257, 21)
  aspp = variables['params']['head']['aspp']
  assert sorted(aspp) == ['branch0', 'branch1', 'branch2', 'branch3', 'image_pooling', 'project']
  assert aspp['project']['conv']['kernel'].shape == (1, 1, 5 * 256, 256)
