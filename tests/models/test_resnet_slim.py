"""The 'slim' ResNet unit layout against the official DeepLab resnet_v1_50_beta.

The tables are the official graph's (research/deeplab core/resnet_v1_beta.py on tf-slim's
stack_blocks_dense, built at 65x65 with multi_grid (1, 2, 4)): per unit, its conv2's stride and atrous
rate, and the side of the unit's output. The torchvision layout stays as torchvision's.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from deeplab_jax.models import backbones, layers, resnet
from deeplab_jax.models.deeplab import build_model

# block -> [(conv2 stride, conv2 rate, output side)] per unit, from the official graph at 65x65.
OFFICIAL_RESNET50_BETA = {
    8: [[(1, 1, 17), (1, 1, 17), (2, 1, 9)],
        [(1, 1, 9)] * 4,
        [(1, 2, 9)] * 6,
        [(1, 4, 9), (1, 8, 9), (1, 16, 9)]],
    16: [[(1, 1, 17), (1, 1, 17), (2, 1, 9)],
         [(1, 1, 9)] * 3 + [(2, 1, 5)],
         [(1, 1, 5)] * 6,
         [(1, 2, 5), (1, 4, 5), (1, 8, 5)]],
}


def slim_resnet50(output_stride, width=64):
  norm = layers.make_norm(False, 0.95, 1e-5)
  return resnet.ResNet((3, 4, 6, 3), norm, output_stride, (1, 2, 4), width, stem='beta', layout='slim')


def unit_table(module, size):
  """block -> [(conv2 stride, conv2 rate, output side)] per unit of `module` on a size x size image."""
  table = {}

  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    path = context.module.path
    if context.method_name == '__call__' and len(path) == 1 and path[0].startswith('stage'):
      stage, unit = (int(p) for p in path[0][len('stage'):].split('_unit'))
      conv2 = context.module.stride, context.module.rate
      y = out[0] if isinstance(out, tuple) else out
      table.setdefault(stage, {})[unit] = (*conv2, y.shape[1])
    return out

  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  variables = jax.eval_shape(module.init, jax.random.key(0), images)
  with nn.intercept_methods(interceptor):
    features = jax.eval_shape(module.apply, variables, images)
  return [[units[u] for u in sorted(units)] for _, units in sorted(table.items())], features


@pytest.mark.parametrize('output_stride', [8, 16])
def test_units_stride_and_dilate_as_the_official_graph(output_stride):
  table, features = unit_table(slim_resnet50(output_stride, width=8), 65)
  assert table == OFFICIAL_RESNET50_BETA[output_stride]
  # The decoder's tap: block1/unit_2/bottleneck_v1/conv3, [1, 17, 17, 256] at width 64.
  assert features['low_level'].shape == (1, 17, 17, 32)


def test_torchvision_layout_strides_the_first_unit():
  norm = layers.make_norm(False, 0.9, 1e-5)
  table, features = unit_table(resnet.ResNet((3, 4, 6, 3), norm, 16, None, 8), 65)
  assert [units[0][:2] for units in table] == [(1, 1), (2, 1), (2, 1), (1, 2)]
  assert features['low_level'].shape == features['stage1'].shape == (1, 17, 17, 32)


def test_slim_shortcuts_project_only_where_channels_change():
  # Official: block*/unit_1/bottleneck_v1/shortcut only; the strided last unit has none.
  variables = jax.eval_shape(slim_resnet50(16, 8).init, jax.random.key(0),
                             jax.ShapeDtypeStruct((1, 33, 33, 3), jnp.float32))
  with_projection = sorted(k for k, v in variables['params'].items() if 'downsample' in v)
  assert with_projection == ['stage1_unit1', 'stage2_unit1', 'stage3_unit1', 'stage4_unit1']


def test_strided_unit_shortcut_is_the_subsampled_identity():
  # A unit whose residual branch is zeroed (conv3's BN scale and offset 0) outputs relu(x[::2, ::2]).
  unit = resnet.Bottleneck(4, layers.make_norm(False, 0.95, 1e-5), stride=2, subsample_shortcut=True,
                           conv_impl='dilation')
  x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 7, 6, 16)), jnp.float32)
  variables = unit.init(jax.random.key(0), x)
  params = {**variables['params'], 'conv3': dict(variables['params']['conv3'])}
  params['conv3']['bn'] = jax.tree.map(jnp.zeros_like, params['conv3']['bn'])
  out = unit.apply({**variables, 'params': params}, x)
  np.testing.assert_array_equal(out, jax.nn.relu(x[:, ::2, ::2]))


def test_decoder_tap_is_conv3_before_the_add_and_relu():
  unit = resnet.Bottleneck(4, layers.make_norm(False, 0.95, 1e-5), subsample_shortcut=True,
                           return_conv3=True, conv_impl='dilation')
  x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 5, 5, 16)), jnp.float32)
  variables = unit.init(jax.random.key(0), x)
  out, conv3 = unit.apply(variables, x)
  np.testing.assert_allclose(out, jax.nn.relu(x + conv3), rtol=1e-6, atol=1e-6)
  assert float(conv3.min()) < 0


def test_v3plus_resnet101_config_builds_the_official_layout():
  from configs import v3plus_resnet101_voc
  config = v3plus_resnet101_voc.get_config()
  assert (config.model.resnet.stem, config.model.resnet.layout) == ('beta', 'slim')
  config.model.resnet.blocks, config.model.resnet.width = (3, 4, 2, 3), 8
  model = build_model(config, train=False)
  images = jax.ShapeDtypeStruct((1, 65, 65, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  # The decoder projects block1/unit_2's conv3 output (4 x width channels).
  assert variables['params']['head']['low_level_project']['conv']['kernel'].shape == (1, 1, 32, 48)
  assert backbones.get('resnet101').low_level == 'low_level'


def test_slim_layout_rejects_torchvision_dilation():
  config = base.get_config()
  config.model.resnet.layout, config.model.resnet.dilation_style = 'slim', 'torchvision'
  with pytest.raises(ValueError, match='slim'):
    jax.eval_shape(build_model(config, train=False).init, jax.random.key(0),
                   jax.ShapeDtypeStruct((1, 33, 33, 3), jnp.float32))
