"""Converted official TF1 DeepLab checkpoints compute the official graph's logits.

The reference is the official code in ../shared/peers/tf_deeplab (or $DEEPLAB_JAX_PEERS/tf_deeplab),
run by official_reference.py in subprocesses (TF1 graph mode): it builds each variant with random
weights and calibrated BatchNorm (better conditioned, see that file), saves a TF1 checkpoint and its
logits; deeplab_jax converts the checkpoint with --kind=tf_deeplab and must give the same logits, at
the logits stride and upsampled to the input, within 1e-4 of their largest magnitude. Each variant at
a side of the form OS * k + 1 and at one other size (the second run restores the first's checkpoint).
Skips without tf_slim or without the reference folder. One reference run costs 5-45 s, so all of
them start once per session, in two processes, and every test reads their outputs.
"""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs.pretrained import tf_deeplab
from deeplab_jax import peers
from deeplab_jax.convert import tf1
from deeplab_jax.convert.match import convert_variables
from deeplab_jax.data import normalization
from deeplab_jax.errors import UserError
from deeplab_jax.models.deeplab import build_model
from tests.conftest import run_module

pytestmark = pytest.mark.xdist_group('tf_deeplab')
pytest.importorskip('tf_slim')
REFERENCE = os.path.join(peers.folder(), 'tf_deeplab')
if not os.path.isfile(os.path.join(REFERENCE, 'run_official.py')):
  pytest.skip(f'no official DeepLab reference at {REFERENCE}', allow_module_level=True)
TOLERANCE = 1e-4  # of the largest logit magnitude
DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'official_reference.py')

RESNET_FLAGS = ['--model_variant=resnet_v1_101_beta', '--decoder_output_stride=4', '--multi_grid=1',
                '--multi_grid=2', '--multi_grid=4', '--noaspp_with_separable_conv',
                '--nodecoder_use_separable_conv']
# name -> (config of configs/pretrained/tf_deeplab.py, output stride, input [H, W], official flags,
# the run whose checkpoint it restores, or None for a fresh random one). Sides: OS * k + 1, and one
# other size per variant. MobileNetV2's other size keeps OS * k + 1 sides (non-square): slim's SAME
# padding pads an even side at the end only, where deeplab_jax pads both sides, so on even sides the
# official MobileNetV2 is off by half a pixel per strided layer. Xception's and ResNet's strided convs
# pad explicitly; ResNet's pool1 is SAME too, so 66 x 90 keeps its input odd (33 x 45).
RUNS = {
    'mobilenetv2_65': ('mobilenetv2_coco_voc_trainaug', 16, (65, 65),
                       ['--model_variant=mobilenet_v2', '--decoder_output_stride=none',
                        '--atrous_rates=none'], None),
    'mobilenetv2_49x81': ('mobilenetv2_coco_voc_trainaug', 16, (49, 81), None, 'mobilenetv2_65'),
    'xception65_65': ('xception65_coco_voc_trainaug', 16, (65, 65),
                      ['--model_variant=xception_65', '--decoder_output_stride=4',
                       '--atrous_rates=6,12,18'], None),
    'xception65_50x70': ('xception65_coco_voc_trainaug', 16, (50, 70), None, 'xception65_65'),
    'resnet101_os16_65': ('resnet_v1_101_beta_imagenet', 16, (65, 65),
                          RESNET_FLAGS + ['--atrous_rates=6,12,18'], None),
    'resnet101_os8_66x90': ('resnet_v1_101_beta_imagenet', 8, (66, 90),
                            RESNET_FLAGS + ['--atrous_rates=12,24,36'], 'resnet101_os16_65'),
}
PROCESSES = (('mobilenetv2_65', 'mobilenetv2_49x81', 'resnet101_os16_65', 'resnet101_os8_66x90'),
             ('xception65_65', 'xception65_50x70'))


def _flags(name: str, folder: str) -> list[str]:
  _, output_stride, size, flags, restores = RUNS[name]
  flags = flags if flags is not None else RUNS[restores][3]
  argv = flags + [f'--output_stride={output_stride}', '--num_classes=21', f'--out={folder}/{name}',
                  f'--input={folder}/{name}.npy']
  rng = np.random.RandomState(len(name))
  np.save(f'{folder}/{name}.npy', rng.randint(0, 256, (2, *size, 3)).astype(np.uint8))
  return argv + ([f'--checkpoint={folder}/{restores}/model.ckpt'] if restores else [])


@pytest.fixture(scope='session')
def references(tmp_path_factory):
  """{'folder', 'processes': [(names, Popen, log path)]}: the official runs, started once per session."""
  folder = str(tmp_path_factory.mktemp('tf_deeplab'))
  processes = []
  for i, names in enumerate(PROCESSES):
    runs, log = os.path.join(folder, f'runs{i}.json'), os.path.join(folder, f'runs{i}.log')
    with open(runs, 'w') as f:
      json.dump([_flags(name, folder) for name in names], f)
    with open(log, 'w') as f:
      processes.append((names, subprocess.Popen([sys.executable, DRIVER, REFERENCE, runs], stdout=f,
                                                stderr=subprocess.STDOUT, cwd=folder), log))
  yield {'folder': folder, 'processes': processes}
  for _, process, _ in processes:
    if process.poll() is None:
      process.kill()


def reference(references, name: str) -> str:
  """The folder of run `name`, waiting for its process; fails with the process's log if it failed."""
  _, process, log = next(p for p in references['processes'] if name in p[0])
  out = os.path.join(references['folder'], name)
  if not os.path.isfile(os.path.join(out, 'meta.json')):
    process.wait(timeout=900)
  if not os.path.isfile(os.path.join(out, 'meta.json')):
    with open(log) as f:
      pytest.fail(f'official reference {name} failed:\n{f.read()[-3000:]}')
  return out


_CONVERTED = {}


def converted(references, name: str):
  """(config, variables) of run `name`'s checkpoint, converted once per checkpoint."""
  arg, output_stride, _, _, restores = RUNS[name]
  source = reference(references, restores or name)
  config = tf_deeplab.get_config(arg)
  config.model.output_stride = output_stride
  if source not in _CONVERTED:
    _CONVERTED[source] = convert_variables(config, tf1.load_checkpoint(source), 'tf_deeplab',
                                           log=lambda _: None)
  return config, _CONVERTED[source]


def relative_error(ours, theirs) -> float:
  ours = np.asarray(ours)
  assert ours.shape == theirs.shape, (ours.shape, theirs.shape)
  return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


@pytest.mark.parametrize('name', list(RUNS))
def test_converted_logits_match_the_official_graph(references, name):
  config, (variables, conversion) = converted(references, name)
  assert not conversion.unmatched and not conversion.missing and not conversion.reinit
  out = reference(references, name)
  images = normalization.normalize(np.load(os.path.join(out, 'input.npy')), config.data)
  model = build_model(config, train=False)
  at_stride, upsampled = jax.jit(lambda v, x: (model.apply(v, x, method=model.single_scale),
                                               model.apply(v, x)))(variables, images)  # one compile
  errors = {'logits': relative_error(at_stride['logits'], np.load(os.path.join(out, 'logits.npy'))),
            'upsampled': relative_error(upsampled['logits'],
                                        np.load(os.path.join(out, 'logits_upsampled.npy')))}
  print(f'{name}: {errors}')
  assert max(errors.values()) <= TOLERANCE, errors


def test_every_official_variable_has_its_place_and_unknown_names_are_listed(references):
  state = tf1.load_checkpoint(reference(references, 'mobilenetv2_65'))
  state['aspp9/weights'] = np.zeros((1, 1, 320, 256), np.float32)
  del state['concat_projection/BatchNorm/moving_variance']
  config = tf_deeplab.get_config('mobilenetv2_coco_voc_trainaug')
  with pytest.raises(UserError) as e:
    convert_variables(config, state, 'tf_deeplab', log=lambda _: None)
  message = str(e.value)
  assert 'aspp9/weights' in message and 'batch_stats/head/aspp/project/bn/var' in message
  assert '--allow_partial' in message


def test_imagenet_kind_loads_the_backbone_alone(references):
  state = tf1.load_checkpoint(reference(references, 'mobilenetv2_65'))
  backbone = {k: v for k, v in state.items() if k.startswith('MobilenetV2/')}
  backbone['MobilenetV2/Logits/Conv2d_1c_1x1/weights'] = np.zeros((1, 1, 1280, 1001), np.float32)
  backbone['global_step'] = np.zeros((), np.float32)
  config = tf_deeplab.get_config('mobilenetv2_coco_voc_trainaug')
  config.model.aspp_features = 8  # the head stays at its initialisation: any width
  variables, conversion = convert_variables(config, backbone, 'tf_deeplab_imagenet', log=lambda _: None)
  assert not conversion.unmatched and not conversion.missing
  assert len(conversion.values) == len(backbone) - 2
  np.testing.assert_array_equal(variables['params']['backbone']['stage2_unit1']['depthwise']['kernel'],
                                state['MobilenetV2/expanded_conv_1/depthwise/depthwise_weights']
                                .transpose(0, 1, 3, 2))


def test_ade20k_checkpoints_lose_their_other_class(references):
  state = tf1.load_checkpoint(reference(references, 'mobilenetv2_65'))  # 21 logits: as 1 + 20 classes
  config = tf_deeplab.get_config('mobilenetv2_coco_voc_trainaug')
  config.data.num_classes = 20
  notices = []
  variables, conversion = convert_variables(config, state, 'tf_deeplab', log=notices.append)
  assert sorted(conversion.dropped_first_class) == ['params/head/logits/bias', 'params/head/logits/kernel']
  np.testing.assert_array_equal(variables['params']['head']['logits']['bias'],
                                state['logits/semantic/biases'][1:])
  assert any('"other"' in n for n in notices)


def test_zoo_tarball_folder_converts_through_the_cli(references, tmp_path):
  source = reference(references, 'mobilenetv2_65')  # a folder with model.ckpt.{index,data-*}
  workdir = str(tmp_path / 'run')
  result = run_module('deeplab_jax.convert', f'--source={source}', '--kind=tf_deeplab',
                      f'--workdir={workdir}',
                      '--config=configs/pretrained/tf_deeplab.py:mobilenetv2_coco_voc_trainaug')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(workdir, 'converted.json')) as f:
    report = json.load(f)
  assert report['loaded'] == 272 and not report['left_at_initialisation'] and not report['unused_keys']


def test_a_folder_without_one_checkpoint_is_refused(tmp_path):
  with pytest.raises(UserError, match='exactly one TF1 checkpoint'):
    tf1.checkpoint_prefix(str(tmp_path))
  with pytest.raises(UserError, match='is not a TF1 checkpoint'):
    tf1.checkpoint_prefix(str(tmp_path / 'model.ckpt'))


@pytest.mark.parametrize('arg', tf_deeplab.ARGS)
def test_every_zoo_config_is_the_official_function_of_its_kind(arg):
  from deeplab_jax.convert import kinds
  from deeplab_jax.convert.architecture import architecture_notes
  config = tf_deeplab.get_config(arg)
  kind = 'tf_deeplab_imagenet' if arg in tf_deeplab.IMAGENET else 'tf_deeplab'
  assert kinds.entries_for(kind, config.model)
  assert architecture_notes(config.model, kind) == []
  assert config.data.normalization == 'inception' and config.model.upsample_align_corners
