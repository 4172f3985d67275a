"""Parameter counts equal the PyTorch peers' where the architectures coincide (skips without torch)."""
import jax
import jax.numpy as jnp
import pytest

from configs.pretrained import smp_deeplabv3plus, torchvision_deeplabv3
from deeplab_jax import peers
from deeplab_jax.models.deeplab import variable_shapes

peers.add_to_path()
torch = pytest.importorskip('torch')
pytest.importorskip('tv_shim')


def jax_param_count(config) -> int:
  return sum(x.size for x in jax.tree.leaves(variable_shapes(config)['params']))


def torch_param_count(module) -> int:
  return sum(p.numel() for p in module.parameters())  # BN running statistics are buffers, not counted


def torchvision_head_config(depth: int, aux: bool):
  """configs/pretrained/torchvision_deeplabv3.py (OS 8, no multi-grid, 3x3 after ASPP), aux on/off."""
  config = torchvision_deeplabv3.get_config(f'resnet{depth}')
  config.model.aux_head = aux
  return config


@pytest.mark.parametrize('depth', [50, 101])
@pytest.mark.parametrize('aux', [False, True])
def test_torchvision_deeplabv3_param_count(depth, aux):
  import tv_shim  # noqa: F401  (makes torchvision importable in this environment)

  from torchvision.models import segmentation
  build = getattr(segmentation, f'deeplabv3_resnet{depth}')
  peer = build(weights=None, weights_backbone=None, num_classes=21, aux_loss=aux)
  assert jax_param_count(torchvision_head_config(depth, aux)) == torch_param_count(peer)


@pytest.mark.parametrize('aux', [False, True])
def test_torchvision_deeplabv3_mobilenet_v3_large_param_count(aux):
  import tv_shim  # noqa: F401

  from torchvision.models import segmentation
  peer = segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=21,
                                                   aux_loss=aux)
  config = torchvision_deeplabv3.get_config('mobilenet_v3_large')
  config.model.aux_head = aux
  assert jax_param_count(config) == torch_param_count(peer)


def test_torchvision_aux_head_changes_the_count():
  # The aux head is 1024*256*9 + 2*256 + 256*21 + 21 parameters: the equality above covers it.
  assert (jax_param_count(torchvision_head_config(50, True)) -
          jax_param_count(torchvision_head_config(50, False))) == 1024 * 256 * 9 + 512 + 256 * 21 + 21


def smp_config():
  """configs/pretrained/smp_deeplabv3plus.py: smp 0.6 DeepLabV3Plus(resnet101) as its source has it."""
  return smp_deeplabv3plus.get_config('resnet101')


def test_smp_deeplabv3plus_resnet101_param_count():
  smp = pytest.importorskip('segmentation_models_pytorch')
  peer = smp.DeepLabV3Plus(encoder_name='resnet101', encoder_weights=None, classes=21)
  assert jax_param_count(smp_config()) == torch_param_count(peer)


@pytest.mark.parametrize('width', [1.0, 0.5])
def test_mobilenetv2_param_count_matches_torchvision_features(width):
  # DeepLab stops at the last inverted residual: torchvision's features without the final 1x1 to 1280.
  import tv_shim  # noqa: F401

  import torchvision

  from deeplab_jax.models import layers, mobilenet
  module = mobilenet.MobileNetV2(layers.make_norm(False, 0.9997, 1e-5), 16, width,
                                 channel_rounding='torchvision')
  variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 65, 65, 3)))
  ours = sum(x.size for x in jax.tree.leaves(variables['params']))
  peer = torchvision.models.mobilenet_v2(width_mult=width)
  assert ours == torch_param_count(peer.features[:-1])


@pytest.mark.parametrize('width', [1.0, 0.75])
def test_mobilenetv3_large_param_count_matches_torchvision_features(width):
  # torchvision's features: stem, 15 units, the 1x1 conv to 960 (2,971,952 parameters at width 1).
  import tv_shim  # noqa: F401

  import torchvision

  from deeplab_jax.models import layers, mobilenet_v3
  module = mobilenet_v3.MobileNetV3Large(layers.make_norm(False, 0.9997, 1e-5), 16, width)
  variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 65, 65, 3)))
  ours = sum(x.size for x in jax.tree.leaves(variables['params']))
  peer = torchvision.models.mobilenet_v3_large(width_mult=width, dilated=True)
  assert ours == torch_param_count(peer.features)
  if width == 1.0:
    assert ours == 2_971_952


def test_xception65_param_count_matches_timm():
  # timm's xception65 is the aligned Xception of DeepLabv3+ (BN after every depthwise conv).
  import tv_shim  # noqa: F401
  timm = pytest.importorskip('timm')
  from deeplab_jax.models import layers, xception
  module = xception.Xception65(layers.make_norm(False, 0.9997, 1e-5), 16)
  variables = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, 65, 65, 3)))
  ours = sum(x.size for x in jax.tree.leaves(variables['params']))
  assert ours == torch_param_count(timm.create_model('xception65', pretrained=False, num_classes=0))
