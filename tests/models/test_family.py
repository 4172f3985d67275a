"""The family's modules: backbone strides, ASPP-L summation, MSC max fusion, separable convs, decoder."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.models import layers, mobilenet, mobilenet_v3, vgg, xception
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.models.layers import scaled_size
from tests.conftest import tiny_config

NORM = layers.make_norm(False, 0.9997, 1e-5)


def shapes(module, size):
  x = jnp.zeros((1, size, size, 3))
  variables = jax.eval_shape(module.init, jax.random.key(0), x)
  return variables, jax.eval_shape(module.apply, variables, x)


def ceil_div(n, stride):
  while stride > 1:
    n, stride = -(-n // 2), stride // 2
  return n


@pytest.mark.parametrize('output_stride', [8, 16, 32])
def test_backbone_strides(output_stride):
  _, out = shapes(xception.Xception65(NORM, output_stride), 129)
  assert out['low_level'].shape == (1, 33, 33, 256)
  assert out['exit'].shape == (1, ceil_div(129, output_stride), ceil_div(129, output_stride), 2048)
  _, out = shapes(mobilenet.MobileNetV2(NORM, output_stride, 0.5), 129)
  assert out['low_level'].shape == (1, 33, 33, 72)  # layer_4's depthwise: 24 * 0.5 channels, x 6
  assert out['out'].shape == (1, ceil_div(129, output_stride), ceil_div(129, output_stride), 160)
  _, out = shapes(mobilenet_v3.MobileNetV3Large(NORM, output_stride, 0.5), 129)
  assert out['low_level'].shape == (1, 33, 33, 16)  # 24 * 0.5 rounded to a multiple of 8
  assert out['aux'].shape == (1, 17, 17, 24)  # the 40-channel unit, at stride 8 whatever the OS
  assert out['out'].shape == (1, ceil_div(129, output_stride), ceil_div(129, output_stride), 480)
  _, out = shapes(vgg.VGG16(output_stride), 129)
  assert out['conv3'].shape == (1, 33, 33, 256)
  assert out['pool5'].shape == (1, ceil_div(129, output_stride), ceil_div(129, output_stride), 512)


def test_mobilenet_v3_dilation_plan_is_torchvisions():
  # Output stride 16: torchvision's dilated=True, the whole last stage (first unit too) at rate 2,
  # stride 1. Output stride 8 also dilates the 80/112-channel stage, at rate 2, and the last at 4.
  plan = mobilenet_v3.unit_strides_and_rates(16)
  assert plan[12:] == [(1, 2)] * 3 and [s for s, _ in plan[:12]] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1]
  assert mobilenet_v3.unit_strides_and_rates(8)[6:] == [(1, 2)] * 6 + [(1, 4)] * 3
  assert all(rate == 1 for _, rate in mobilenet_v3.unit_strides_and_rates(32))


def test_largefov_dilation_plan_is_v1s():
  # pool4, pool5 at stride 1; conv5 at rate 2 (DeepLab v1 section 3.1).
  assert vgg.pool_strides_and_rates(8) == [(2, 1), (2, 1), (2, 1), (1, 1), (1, 2)]
  assert xception.block_strides_and_rates(8)[3:] == [(1, 2), (1, 2), (1, 4)]


def tiny_v2_config(msc=()):
  config = tiny_config()
  model = config.model
  model.head, model.fc_features, model.multi_grid, model.output_stride = 'aspp_l', 0, (), 8
  model.resnet.blocks = (1, 1, 1, 1)
  model.msc_scales = msc
  config.data.num_classes = 6
  return config


def test_asppl_logits_are_the_sum_of_its_branches():
  model = build_model(tiny_v2_config(), train=False)
  x = jax.random.normal(jax.random.key(0), (1, 33, 33, 3))
  variables = model.init(jax.random.key(1), x)
  total = model.apply(variables, x)['logits']
  head = variables['params']['head']
  parts = []
  for keep in head:  # zero every other branch: what remains is that branch's logits
    params = dict(variables['params'])
    params['head'] = {b: (head[b] if b == keep else jax.tree.map(jnp.zeros_like, head[b])) for b in head}
    parts.append(model.apply({**variables, 'params': params}, x)['logits'])
  assert len(parts) == 4
  np.testing.assert_allclose(total, sum(parts), rtol=1e-4, atol=1e-5)


def test_msc_fuses_by_max_of_the_scales_upsampled_logits():
  # msc_fuse_at='input' with half-pixel resizing (the official fusion: tests/models/test_geometry.py).
  config = tiny_v2_config((1.0, 0.75, 0.5))
  config.model.msc_fuse_at, config.model.upsample_align_corners = 'input', False
  msc_model = build_model(config, train=False)
  single = build_model(tiny_v2_config(), train=False)
  x = jax.random.normal(jax.random.key(0), (2, 41, 41, 3))
  variables = msc_model.init(jax.random.key(1), x)
  out = msc_model.apply(variables, x)
  expected = []
  for scale in (1.0, 0.75, 0.5):
    side = scaled_size((41, 41), scale, corner_aligned=False)[0]
    scaled = jax.image.resize(x, (2, side, side, 3), 'bilinear', antialias=False)
    # The same weights at each scale; the head's logits at its own stride, then upsampled once.
    logits = single.apply(variables, scaled, method=lambda m, im: m.head(m.backbone(im)['stage4']))
    expected.append(jax.image.resize(logits, (2, 41, 41, 6), 'bilinear', antialias=False))
  assert [scaled_size((513, 513), s, corner_aligned=True)[0] for s in (1.0, 0.75, 0.5)] == [513, 385, 257]
  assert len(out['scale_logits']) == 3
  for got, want in zip(out['scale_logits'], expected):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out['logits'], np.maximum.reduce([np.asarray(e) for e in expected]),
                             rtol=1e-4, atol=1e-5)
  assert not np.allclose(expected[0], expected[2])  # the scales differ: the max is not trivial


@pytest.mark.parametrize('depthwise_bn', [True, False])
def test_separable_conv_layout(depthwise_bn):
  module = layers.SeparableConvBNReLU(8, NORM, 3, rate=2, depthwise_bn=depthwise_bn)
  variables, y = shapes(module, 9)
  params = variables['params']
  assert params['depthwise']['kernel'].shape == (3, 3, 1, 3)
  assert params['pointwise']['kernel'].shape == (1, 1, 3, 8)
  assert ('depthwise_bn' in params) == depthwise_bn
  assert y.shape == (1, 9, 9, 8)


def test_decoder_head_layout_and_output_size():
  config = tiny_config()
  config.model.decoder = True
  config.model.decoder_separable = True
  config.model.aspp_separable = True
  config.data.num_classes = 6
  model = build_model(config, train=False)
  variables, out = shapes(model, 65)
  assert out['logits'].shape == (1, 65, 65, 6)
  head = variables['params']['head']
  assert head['low_level_project']['conv']['kernel'].shape == (1, 1, 32, 48)  # stage1: 4 x width 8
  assert head['decoder_conv1']['depthwise']['kernel'].shape == (3, 3, 1, 16 + 48)
  assert sorted(k for k in head if k.startswith('decoder_conv')) == ['decoder_conv1', 'decoder_conv2']
  assert 'depthwise' in head['aspp']['branch1']


def test_aux_head_only_on_resnet():
  config = tiny_config()
  config.model.backbone = 'mobilenetv2'
  config.model.multi_grid = ()
  config.model.aux_head = True
  with pytest.raises(UserError, match='aux_head'):
    build_model(config, train=False)
