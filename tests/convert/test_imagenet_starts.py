"""The ImageNet backbones that start the v1, v3+ Xception and v3+ MobileNetV2 configs: timm's
xception65, torchvision's mobilenet_v2 and vgg16 (skips without torch / torchvision / timm).

Every peer is randomly initialised, BatchNorm running statistics included, and run in eval mode; the
deeplab_jax backbone on the converted variables must give the same features within 1e-4 of their
largest magnitude, in float32.
"""
import jax
import pytest

from configs.pretrained import timm_xception65, torchvision_imagenet
from deeplab_jax.convert import kinds, match
from deeplab_jax.convert.match import convert_variables
from deeplab_jax.models.deeplab import variable_shapes
from tests.convert import helpers
from tests.convert.helpers import TOLERANCE, nhwc, numpy_state, randomise, relative_error
from tests.convert.test_torchvision import build_backbone

torch = helpers.torch  # importing helpers skipped this module without torch, and imported tv_shim

from torchvision.models import mobilenetv2 as tv_mobilenetv2  # noqa: E402
from torchvision.models import vgg as tv_vgg  # noqa: E402


def backbone_features(config, kind, state, output_stride, image):
  """{'conversion', feature name -> [B, h, w, C]} of config's backbone on the converted state."""
  variables, conversion = convert_variables(config, state, kind, log=lambda _: None)
  backbone = build_backbone(config.model, output_stride)
  backbone_variables = {c: variables[c]['backbone'] for c in ('params', 'batch_stats')
                        if 'backbone' in variables[c]}  # VGG-16 has no BatchNorm
  features = jax.jit(backbone.apply)(backbone_variables, nhwc(image))
  return conversion, features


def assert_close(ours, theirs, name):
  assert ours.shape == tuple(theirs.permute(0, 2, 3, 1).shape), name
  error = relative_error(ours, theirs)
  print(f'{name}: {error:.2e}')
  assert error <= TOLERANCE, (name, error)


def keep_output(module, store, key):
  """Stores a copy of module's output (the next in-place ReLU would overwrite it)."""
  module.register_forward_hook(lambda m, i, o: store.__setitem__(key, o.detach().clone()))


def test_timm_xception65_features_match():
  timm = pytest.importorskip('timm')
  from timm.models import xception_aligned
  config = timm_xception65.get_config()
  # Two middle-flow units instead of 16 (a shorter compile); the full model's names are checked below.
  config.model.xception.middle_units = 2
  cfg = [dict(in_chs=64, out_chs=128, stride=2), dict(in_chs=128, out_chs=256, stride=2),
         dict(in_chs=256, out_chs=728, stride=2), *[dict(in_chs=728, out_chs=728, stride=1)] * 2,
         dict(in_chs=728, out_chs=(728, 1024, 1024), stride=2),
         dict(in_chs=1024, out_chs=(1536, 1536, 2048), stride=1, no_skip=True, start_with_relu=False)]
  norm = xception_aligned.partial(torch.nn.BatchNorm2d, eps=.001, momentum=.1)
  peer = randomise(xception_aligned.XceptionAligned(cfg, norm_layer=norm, output_stride=16), 21)
  theirs = {}
  keep_output(peer.blocks[1].stack.conv2, theirs, 'low_level')  # entry block 2, second separable
  torch.manual_seed(5)
  image = torch.randn(1, 3, 65, 97)
  with torch.no_grad():
    theirs['exit'] = peer.forward_features(image)
  conversion, ours = backbone_features(config, 'timm_xception65', numpy_state(peer), 16, image)
  assert not conversion.unmatched and not conversion.missing
  for name in ('low_level', 'exit'):
    assert_close(ours[name], theirs[name], f'xception65 {name}')
  # timm's xception65 itself (16 middle units): every key has its place, and only head.fc is left.
  full = timm.create_model('xception65', pretrained=False)
  config.model.xception.middle_units = 16
  result = match.match(numpy_state(full), variable_shapes(config), 'timm_xception65',
                       kinds.entries_for('timm_xception65', config.model))
  assert not result.unmatched and not result.missing


def test_torchvision_mobilenet_v2_features_match():
  peer = randomise(tv_mobilenetv2.mobilenet_v2(), 23)
  theirs = {}
  keep_output(peer.features[3].conv[1], theirs, 'low_level')  # official layer_4/depthwise_output
  torch.manual_seed(5)
  image = torch.randn(1, 3, 65, 97)
  with torch.no_grad():
    theirs['out'] = peer.features[:18](image)  # without the 1280-channel conv DeepLab leaves out
  config = torchvision_imagenet.get_config('mobilenet_v2')
  config.model.aspp_features = 8  # the head stays at its initialisation: less to compile
  conversion, ours = backbone_features(config, 'torchvision_mobilenet_v2', numpy_state(peer), 32, image)
  assert not conversion.unmatched and not conversion.missing
  for name in ('low_level', 'out'):
    assert_close(ours[name], theirs[name], f'mobilenet_v2 {name}')


def deeplab_vgg16(peer: 'torch.nn.Module') -> 'torch.nn.Sequential':
  """torchvision's vgg16 features as DeepLab v1's VGG-16: 3x3/2 max pools rounding up as Caffe's, pool4
  and pool5 at stride 1, conv5 at rate 2 (output stride 8). The weights stay torchvision's."""
  layers, pools = list(peer.features), 0
  for i, layer in enumerate(layers):
    if isinstance(layer, torch.nn.MaxPool2d):
      pools += 1
      layers[i] = torch.nn.MaxPool2d(3, 2 if pools <= 3 else 1, 1, ceil_mode=True)
    elif isinstance(layer, torch.nn.Conv2d) and pools == 4:
      layer.dilation, layer.padding = (2, 2), (2, 2)
  return torch.nn.Sequential(*layers).eval()


def test_torchvision_vgg16_features_match():
  peer = randomise(tv_vgg.vgg16(), 29)
  torch.manual_seed(5)
  image = torch.randn(1, 3, 65, 81)
  features = deeplab_vgg16(peer)
  with torch.no_grad():
    theirs = {'conv3': features[:16](image), 'pool5': features(image)}  # 16: pool3
  config = torchvision_imagenet.get_config('vgg16')
  config.model.fc_features = 8  # fc6/fc7 stay at their initialisation: less to compile
  conversion, ours = backbone_features(config, 'torchvision_vgg16', numpy_state(peer), 8, image)
  assert not conversion.unmatched and not conversion.missing  # fc6-fc8 ignored
  for name in ('conv3', 'pool5'):
    assert_close(ours[name], theirs[name], f'vgg16 {name}')
