"""Converted torchvision weights compute torchvision's functions (skips without torch / torchvision).

Every peer is randomly initialised, BatchNorm running statistics included, and run in eval mode; the
deeplab_jax model on the converted variables must give the same logits (or backbone features) within
1e-4 of their largest magnitude, in float32.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from configs.pretrained import torchvision_deeplabv3
from deeplab_jax.convert.match import convert_variables
from deeplab_jax.errors import UserError
from deeplab_jax.models import backbones, layers
from deeplab_jax.models.deeplab import build_model
from tests.convert import helpers
from tests.convert.helpers import TOLERANCE, logits_errors, nhwc, numpy_state, randomise, relative_error

torch = helpers.torch  # importing helpers skipped this module without torch, and imported tv_shim

from torchvision.models import mobilenetv3 as tv_mobilenetv3  # noqa: E402
from torchvision.models import resnet as tv_resnet  # noqa: E402
from torchvision.models import segmentation  # noqa: E402
from torchvision.models._utils import IntermediateLayerGetter  # noqa: E402

# --------------------------------------------------------------------------------------------------
# Logits parity, full architectures
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('depth,sizes', [(50, [(513, 513), (97, 129)]), (101, [(65, 65), (129, 97)])])
def test_torchvision_deeplabv3_logits_match(depth, sizes):
  peer = randomise(getattr(segmentation, f'deeplabv3_resnet{depth}')(
      weights=None, weights_backbone=None, num_classes=21, aux_loss=True), depth)
  config = torchvision_deeplabv3.get_config(f'resnet{depth}')
  for size in sizes:
    errors = logits_errors(peer, config, 'torchvision_deeplabv3', size, aux_key='aux')
    assert max(errors.values()) <= TOLERANCE, (size, errors)


def test_torchvision_deeplabv3_mobilenet_v3_large_logits_match():
  peer = randomise(segmentation.deeplabv3_mobilenet_v3_large(
      weights=None, weights_backbone=None, num_classes=21, aux_loss=True), 13)
  # Random biases dominate this small model's logits (spatial spread ~0.006 against ~0.3): without
  # them the logits are all features, so the relative tolerance tests the backbone and heads.
  with torch.no_grad():
    peer.classifier[-1].bias.zero_()
    peer.aux_classifier[-1].bias.zero_()
  config = torchvision_deeplabv3.get_config('mobilenet_v3_large')
  for size in [(513, 513), (321, 257)]:
    errors = logits_errors(peer, config, 'torchvision_deeplabv3', size, aux_key='aux')
    assert max(errors.values()) <= TOLERANCE, (size, errors)


# --------------------------------------------------------------------------------------------------
# Backbone features
# --------------------------------------------------------------------------------------------------

def build_backbone(model_cfg, output_stride: int):
  """model_cfg's backbone alone, in inference mode and float32, as build_model builds it."""
  context = backbones.Context(layers.make_norm(False, 0.9997, 1e-5), output_stride, jnp.float32,
                              model_cfg.atrous_impl, remat=False)
  return backbones.build(model_cfg, context)


def backbone_config(depth: int, output_stride: int):
  model = base.get_config().model
  model.backbone = f'resnet{depth}'
  model.output_stride = output_stride
  model.multi_grid = ()
  model.resnet.dilation_style = 'torchvision'
  return model


@pytest.mark.parametrize('output_stride,dilation',
                         [(32, [False, False, False]), (8, [False, True, True])])
def test_torchvision_resnet_backbone_features_match(output_stride, dilation):
  peer = randomise(tv_resnet.resnet50(replace_stride_with_dilation=dilation), 3)
  model_cfg = backbone_config(50, output_stride)
  config = base.get_config()
  config.model = model_cfg
  variables, conversion = convert_variables(config, numpy_state(peer), 'torchvision_resnet',
                                            log=lambda _: None)
  assert not conversion.unmatched and not conversion.missing  # fc ignored, head left at init
  getter = IntermediateLayerGetter(peer, {'layer1': 'stage1', 'layer4': 'stage4'})
  torch.manual_seed(5)
  image = torch.randn(1, 3, 97, 129)
  with torch.no_grad():
    theirs = getter(image)
  backbone = build_backbone(model_cfg, output_stride)
  ours = jax.jit(backbone.apply)({'params': variables['params']['backbone'],
                                  'batch_stats': variables['batch_stats']['backbone']}, nhwc(image))
  for name in ('stage1', 'stage4'):
    assert ours[name].shape == tuple(theirs[name].permute(0, 2, 3, 1).shape)
    assert relative_error(ours[name], theirs[name]) <= TOLERANCE, name


def test_torchvision_mobilenet_v3_backbone_features_match():
  # torchvision's ImageNet model, classifier included (ignored); features 3, 4 and 16 are the stride-4
  # low-level, torchvision DeepLabV3's aux and its final 960-channel features. dilated=True (output
  # stride 16) and False (32) share their weights, so one conversion serves both.
  dilated = randomise(tv_mobilenetv3.mobilenet_v3_large(dilated=True), 17)
  plain = tv_mobilenetv3.mobilenet_v3_large(dilated=False).eval()
  plain.load_state_dict(dilated.state_dict())
  config = torchvision_deeplabv3.get_config('mobilenet_v3_large')
  config.model.aux_head, config.model.aspp_features = False, 8  # heads left at init: less to compile
  variables, conversion = convert_variables(config, numpy_state(dilated), 'torchvision_mobilenet_v3',
                                            log=lambda _: None)
  assert not conversion.unmatched and not conversion.missing  # classifier ignored, heads left at init
  torch.manual_seed(5)
  image = torch.randn(1, 3, 97, 129)
  for output_stride, peer in ((16, dilated), (32, plain)):
    getter = IntermediateLayerGetter(peer.features, {'3': 'low_level', '4': 'aux', '16': 'out'})
    with torch.no_grad():
      theirs = getter(image)
    backbone = build_backbone(config.model, output_stride)
    ours = jax.jit(backbone.apply)({'params': variables['params']['backbone'],
                                    'batch_stats': variables['batch_stats']['backbone']}, nhwc(image))
    for name in ('low_level', 'aux', 'out'):
      assert ours[name].shape == tuple(theirs[name].permute(0, 2, 3, 1).shape), (output_stride, name)
      error = relative_error(ours[name], theirs[name])
      print(f'mobilenet_v3_large OS {output_stride} {name}: {error:.2e}')
      assert error <= TOLERANCE, (output_stride, name, error)


@pytest.mark.parametrize('kind,arg', [('torchvision_resnet', 'mobilenet_v3_large'),
                                      ('torchvision_mobilenet_v3', 'resnet50')])
def test_kind_and_backbone_must_agree(kind, arg):
  with pytest.raises(UserError, match='model.backbone'):
    convert_variables(torchvision_deeplabv3.get_config(arg), {}, kind)


# --------------------------------------------------------------------------------------------------
# A small torchvision DeepLabV3 (one unit per stage) for the checks that don't need full depth
# --------------------------------------------------------------------------------------------------

def test_small_torchvision_model_matches_at_odd_size():
  errors = logits_errors(helpers.small_peer(21), helpers.small_config(21), 'torchvision_deeplabv3',
                         (51, 77), aux_key='aux')
  assert max(errors.values()) <= TOLERANCE, errors


def test_different_class_count_loads_everything_but_the_logits():
  peer = helpers.small_peer(21)
  config = helpers.small_config(5)
  notices = []
  variables, conversion = convert_variables(config, numpy_state(peer), 'torchvision_deeplabv3',
                                            log=notices.append)
  assert sorted(conversion.reinit) == ['params/aux_head/logits/bias', 'params/aux_head/logits/kernel',
                                       'params/head/logits/bias', 'params/head/logits/kernel']
  assert any('data.num_classes=5' in n for n in notices)
  model = build_model(config, train=False)
  initial = jax.jit(model.init)(jax.random.key(config.seed), jnp.zeros((1, 33, 33, 3)))
  for head in ('head', 'aux_head'):
    assert variables['params'][head]['logits']['kernel'].shape == (1, 1, 256, 5)
    np.testing.assert_array_equal(variables['params'][head]['logits']['kernel'],
                                  initial['params'][head]['logits']['kernel'])
  state = peer.state_dict()
  np.testing.assert_array_equal(variables['params']['head']['post_conv']['conv']['kernel'],
                                state['classifier.1.weight'].numpy().transpose(2, 3, 1, 0))
  stage4_bn = variables['batch_stats']['backbone']['stage4_unit1']['conv2']['bn']
  np.testing.assert_array_equal(stage4_bn['var'], state['backbone.layer4.0.bn2.running_var'].numpy())
  loaded = len(conversion.values)
  total = sum(x.size > 0 for x in jax.tree.leaves(variables))
  assert loaded == total - 4  # everything else came from the checkpoint


def test_mismatched_checkpoint_lists_keys_and_refuses():
  state = numpy_state(helpers.small_peer(21))
  state['extra.weight'] = np.zeros(3, np.float32)
  del state['classifier.2.running_var']
  config = helpers.small_config(21)
  with pytest.raises(UserError) as e:
    convert_variables(config, state, 'torchvision_deeplabv3')
  assert 'extra.weight' in str(e.value) and 'batch_stats/head/post_conv/bn/var' in str(e.value)
  assert '--allow_partial' in str(e.value)
  variables, conversion = convert_variables(config, state, 'torchvision_deeplabv3', allow_partial=True,
                                            log=lambda _: None)
  assert conversion.unmatched == ['extra.weight']
  assert variables['batch_stats']['head']['post_conv']['bn']['var'].shape == (256,)


def test_architecture_notes_come_from_the_peer_config():
  state = numpy_state(helpers.small_peer(21))
  notices = []
  convert_variables(helpers.small_config(21), state, 'torchvision_deeplabv3', log=notices.append)
  assert not [n for n in notices if n.startswith('note:')]  # the peer's own config
  config = helpers.small_config(21)
  config.model.output_stride = 16  # the weights still load; torchvision computes at 8
  notices = []
  convert_variables(config, state, 'torchvision_deeplabv3', log=notices.append)
  assert [n for n in notices if n.startswith('note:')] == [
      'note: model.output_stride is 16; the torchvision_deeplabv3 peer computes with 8']
