"""Converted PyTorch weights compute the peers' functions (skips without torch / torchvision / smp).

Every peer is randomly initialised, BatchNorm running statistics included, and run in eval mode; the
deeplab_jax model on the converted variables must give the same logits within 1e-4 of their largest
magnitude, in float32.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from configs.pretrained import smp_deeplabv3plus, torchvision_deeplabv3
from deeplab_jax import convert, peers
from deeplab_jax.errors import UserError
from deeplab_jax.models import layers
from deeplab_jax.models.deeplab import build_backbone, build_model
from tests.conftest import run_module

peers.add_to_path()
torch = pytest.importorskip('torch')
pytest.importorskip('tv_shim')
import tv_shim  # noqa: E402,F401  (makes torchvision importable in this environment)

from torchvision.models import mobilenetv3 as tv_mobilenetv3  # noqa: E402
from torchvision.models import resnet as tv_resnet  # noqa: E402
from torchvision.models import segmentation  # noqa: E402
from torchvision.models._utils import IntermediateLayerGetter  # noqa: E402

torch.set_num_threads(2)
TOLERANCE = 1e-4  # of the largest logit magnitude


def randomise(module: 'torch.nn.Module', seed: int) -> 'torch.nn.Module':
  """module in eval mode with every weight random, BatchNorm affine and running statistics too."""
  torch.manual_seed(seed)
  for m in module.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.normal_(0.0, 0.1)
      m.running_mean.normal_(0.0, 0.1)
      m.running_var.uniform_(0.5, 1.5)
    elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
      m.bias.data.normal_(0.0, 0.1)
  return module.eval()


def numpy_state(module) -> dict:
  return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def nhwc(x: 'torch.Tensor') -> jax.Array:
  return jnp.asarray(x.detach().numpy().transpose(0, 2, 3, 1))


def relative_error(ours: jax.Array, theirs: 'torch.Tensor') -> float:
  """max |ours - theirs| / max |theirs|, theirs NCHW."""
  theirs = theirs.detach().numpy().transpose(0, 2, 3, 1)
  return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


def logits_errors(peer, config, kind, size, seed=0, aux_key=None) -> dict[str, float]:
  """Relative errors of deeplab_jax's logits (and aux logits) against the peer's on a random image."""
  variables, _ = convert.convert_variables(config, numpy_state(peer), kind, log=lambda _: None)
  torch.manual_seed(seed + 1)
  image = torch.randn(1, 3, *size)
  with torch.no_grad():
    theirs = peer(image)
  theirs = theirs if isinstance(theirs, dict) else {'out': theirs}
  ours = jax.jit(build_model(config, train=False).apply)(
      variables, nhwc(image))
  errors = {'logits': relative_error(ours['logits'], theirs['out'])}
  if aux_key:
    errors['aux'] = relative_error(ours['aux'], theirs[aux_key])
  print(f'{kind} {config.model.backbone} {size}: {errors}')
  return errors


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


def test_smp_deeplabv3plus_logits_match():
  smp = pytest.importorskip('segmentation_models_pytorch')
  peer = randomise(smp.DeepLabV3Plus(encoder_name='resnet101', encoder_weights=None, classes=21), 7)
  config = smp_deeplabv3plus.get_config('resnet101')
  # smp refuses sides that are not multiples of 16, so the non-square size is even.
  for size in [(64, 64), (96, 160)]:
    errors = logits_errors(peer, config, 'smp_deeplabv3plus', size)
    assert errors['logits'] <= TOLERANCE, (size, errors)


# --------------------------------------------------------------------------------------------------
# Backbone features
# --------------------------------------------------------------------------------------------------

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
  variables, conversion = convert.convert_variables(config, numpy_state(peer), 'torchvision_resnet',
                                                    log=lambda _: None)
  assert not conversion.unmatched and not conversion.missing  # fc ignored, head left at init
  getter = IntermediateLayerGetter(peer, {'layer1': 'stage1', 'layer4': 'stage4'})
  torch.manual_seed(5)
  image = torch.randn(1, 3, 97, 129)
  with torch.no_grad():
    theirs = getter(image)
  backbone = build_backbone(model_cfg, layers.make_norm(False, 0.9997, 1e-5), output_stride, jnp.float32)
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
  variables, conversion = convert.convert_variables(config, numpy_state(dilated),
                                                    'torchvision_mobilenet_v3', log=lambda _: None)
  assert not conversion.unmatched and not conversion.missing  # classifier ignored, heads left at init
  torch.manual_seed(5)
  image = torch.randn(1, 3, 97, 129)
  for output_stride, peer in ((16, dilated), (32, plain)):
    getter = IntermediateLayerGetter(peer.features, {'3': 'low_level', '4': 'aux', '16': 'out'})
    with torch.no_grad():
      theirs = getter(image)
    backbone = build_backbone(config.model, layers.make_norm(False, 0.9997, 1e-5), output_stride,
                              jnp.float32)
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
    convert.convert_variables(torchvision_deeplabv3.get_config(arg), {}, kind)


# --------------------------------------------------------------------------------------------------
# A small torchvision DeepLabV3 (one unit per stage) for the checks that don't need full depth
# --------------------------------------------------------------------------------------------------

def small_peer(num_classes: int, seed: int = 11):
  """torchvision's DeepLabV3 on a ResNet with one bottleneck per stage, dilated as deeplabv3_resnet50."""
  from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
  from torchvision.models.segmentation.fcn import FCNHead
  backbone = tv_resnet.ResNet(tv_resnet.Bottleneck, [1, 1, 1, 1],
                              replace_stride_with_dilation=[False, True, True])
  backbone = IntermediateLayerGetter(backbone, {'layer4': 'out', 'layer3': 'aux'})
  model = DeepLabV3(backbone, DeepLabHead(2048, num_classes), FCNHead(1024, num_classes))
  return randomise(model, seed)


def small_config(num_classes: int):
  config = torchvision_deeplabv3.get_config('resnet50')
  config.model.resnet.blocks = (1, 1, 1, 1)
  config.data.num_classes = num_classes
  return config


def test_small_torchvision_model_matches_at_odd_size():
  errors = logits_errors(small_peer(21), small_config(21), 'torchvision_deeplabv3', (51, 77),
                         aux_key='aux')
  assert max(errors.values()) <= TOLERANCE, errors


def test_different_class_count_loads_everything_but_the_logits():
  peer = small_peer(21)
  config = small_config(5)
  notices = []
  variables, conversion = convert.convert_variables(config, numpy_state(peer), 'torchvision_deeplabv3',
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
  state = numpy_state(small_peer(21))
  state['extra.weight'] = np.zeros(3, np.float32)
  del state['classifier.2.running_var']
  config = small_config(21)
  with pytest.raises(UserError) as e:
    convert.convert_variables(config, state, 'torchvision_deeplabv3')
  assert 'extra.weight' in str(e.value) and 'batch_stats/head/post_conv/bn/var' in str(e.value)
  assert '--allow_partial' in str(e.value)
  variables, conversion = convert.convert_variables(config, state, 'torchvision_deeplabv3',
                                                    allow_partial=True, log=lambda _: None)
  assert conversion.unmatched == ['extra.weight']
  assert variables['batch_stats']['head']['post_conv']['bn']['var'].shape == (256,)


# --------------------------------------------------------------------------------------------------
# Command line: a file on disk -> convert -> --mode=eval
# --------------------------------------------------------------------------------------------------

def small_flags(data_root: str) -> list[str]:
  return ['--config=configs/pretrained/torchvision_deeplabv3.py:resnet50',
          '--config.model.resnet.blocks=(1,1,1,1)', '--config.data.dataset=synthetic',
          f'--config.data.root={data_root}', '--config.data.train_split=train',
          '--config.data.num_classes=6', '--config.data.class_names=("a","b","c","d","e","f")',
          '--config.data.eval_size=96', '--config.data.crop_size=64', '--config.eval.batch_size=1',
          '--config.data.synthetic.num_train=4', '--config.data.synthetic.num_val=2',
          '--config.data.synthetic.min_size=60', '--config.data.synthetic.max_size=90']


@pytest.mark.parametrize('suffix', ['.pth', '.safetensors'])
def test_file_converts_through_the_cli_and_evaluates(tmp_path, suffix):
  peer = small_peer(21)
  source = str(tmp_path / f'peer{suffix}')
  if suffix == '.pth':
    torch.save(peer.state_dict(), source)
  else:
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in peer.state_dict().items()}, source)
  workdir = str(tmp_path / 'run')
  flags = small_flags(str(tmp_path / 'data'))  # generated by the first run that reads it
  result = run_module('deeplab_jax.convert', f'--source={source}', '--kind=torchvision_deeplabv3',
                      f'--workdir={workdir}', *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'left at initialisation' in result.stdout  # 21 classes in the file, 6 in the config
  with open(os.path.join(workdir, 'converted.json')) as f:
    assert len(json.load(f)['left_at_initialisation']) == 4
  result = run_module('deeplab_jax.main', '--mode=eval', f'--workdir={workdir}', *flags)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'Restored params and batch statistics of step 0' in result.stdout
  assert os.path.isfile(os.path.join(workdir, 'eval', 'val_step0.json'))

  # The standalone variables hold the same values as the step-0 checkpoint's.
  import orbax.checkpoint as ocp
  with ocp.StandardCheckpointer() as checkpointer:
    converted = checkpointer.restore(os.path.join(workdir, 'converted'))
  kernel = peer.state_dict()['backbone.conv1.weight'].numpy().transpose(2, 3, 1, 0)
  stem = converted['params']['backbone']['stem']['conv1']['conv']
  np.testing.assert_array_equal(stem['kernel'], kernel)


def test_cli_errors_are_one_line(tmp_path):
  result = run_module('deeplab_jax.convert', f'--source={tmp_path}/missing.pth',
                      '--kind=torchvision_deeplabv3', f'--workdir={tmp_path}/run',
                      '--config=configs/pretrained/torchvision_deeplabv3.py:resnet50')
  assert result.returncode == 2
  assert 'missing.pth is not a file' in result.stderr and 'Traceback' not in result.stderr
