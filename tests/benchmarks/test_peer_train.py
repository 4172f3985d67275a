"""deeplab_jax.benchmarks.peer_train: torchvision's metric path matches numpy's, its augmentation keeps
the protocol, and a tiny real run on CamVid reports both sides."""
import json
import os

import numpy as np
from PIL import Image
import pytest

from configs import camvid
from deeplab_jax import peers
from deeplab_jax.benchmarks import peer_train
from deeplab_jax.errors import UserError
from tests.conftest import ROOT, run_module

CAMVID = os.environ.get('DEEPLAB_JAX_CAMVID') or os.path.join(ROOT, '..', 'shared', 'data', 'camvid')
# Ours shrunk to a ResNet of width 8 (a seconds-long compile); theirs cannot shrink: its steps are few.
TINY_OURS = ('--config.model.backbone=resnet50', '--config.model.resnet.blocks=(1,1,1,1)',
             '--config.model.multi_grid=()', '--config.model.resnet.width=8',
             '--config.model.aspp_features=16')


@pytest.fixture(scope='module')
def torch():
  """torch, with torchvision importable through the peers' tv_shim; skips without them."""
  pytest.importorskip('torch')
  peers.add_to_path()
  pytest.importorskip('tv_shim', reason=f'peers helpers not found in {peers.folder()} (DEEPLAB_JAX_PEERS)')
  pytest.importorskip('torchvision')
  return peer_train.import_torchvision()[0]


@pytest.fixture(scope='module')
def camvid_root():
  if not os.path.isdir(os.path.join(CAMVID, 'trainannot')):
    pytest.skip(f'CamVid not found in {CAMVID} (DEEPLAB_JAX_CAMVID)')
  return CAMVID


def numpy_confusion(labels, predictions, num_classes, ignore_label):
  confusion = np.zeros((num_classes, num_classes), np.int64)
  valid = labels != ignore_label
  np.add.at(confusion, (labels[valid], predictions[valid]), 1)
  return confusion


def test_torch_confusion_equals_numpy_at_label_size(torch):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 5, (2, 7, 9)).astype(np.uint8)
  labels[0, :2] = 4  # 4 plays the ignore label: left out
  scores = rng.standard_normal((2, 4, 7, 9)).astype(np.float32)
  got = peer_train.torch_confusion(torch, torch.from_numpy(scores), labels, 4, 4)
  np.testing.assert_array_equal(got, numpy_confusion(labels, scores.argmax(1), 4, 4))


def test_torch_confusion_resizes_low_resolution_scores_to_the_labels(torch):
  # Scores at a quarter of the label size, constant per image: image 0 predicts class 2, image 1 class 0.
  labels = np.random.default_rng(1).integers(0, 3, (2, 12, 16)).astype(np.uint8)
  scores = np.zeros((2, 3, 3, 4), np.float32)
  scores[0, 2], scores[1, 0] = 1.0, 1.0
  predictions = np.stack([np.full((12, 16), 2), np.zeros((12, 16), int)])
  got = peer_train.torch_confusion(torch, torch.from_numpy(scores), labels, 3, 255)
  np.testing.assert_array_equal(got, numpy_confusion(labels, predictions, 3, 255))


def test_torchvision_augmentation_scales_the_short_side_and_pads_with_ignore():
  rng = np.random.default_rng(0)
  image = Image.fromarray(np.full((30, 40, 3), 200, np.uint8))
  label = np.full((30, 40), 1, np.uint8)
  for _ in range(5):  # shorter side 30 -> 30..45, crop 64: always padded right and bottom
    x, y = peer_train.torchvision_train_example(image, label, rng, 64, 1.0, 1.5, 11)
    assert x.shape == (64, 64, 3) and y.shape == (64, 64) and x.dtype == np.float32
    assert set(np.unique(y)) == {1, 11}
    assert np.all(y[-1] == 11) and np.all(y[:, -1] == 11) and y[0, 0] == 1
    np.testing.assert_allclose(x[0, 0], (200 / 255 - peer_train.IMAGENET_MEAN) / peer_train.IMAGENET_STD,
                               rtol=1e-5)
    rows = int((y != 11).any(1).sum())
    assert 30 <= rows <= 45  # the shorter side, scaled by [1.0, 1.5]


def test_a_missing_data_root_is_a_user_error_naming_it(tmp_path):
  config = camvid.get_config('tiny')
  config.data.root = str(tmp_path / 'nowhere')
  with pytest.raises(UserError, match='nowhere'):
    peer_train.load_data(config)


def test_tiny_run_reports_both_sides_on_camvid(torch, camvid_root, tmp_path):
  out = str(tmp_path / 'report.json')
  result = run_module('deeplab_jax.benchmarks.peer_train', '--config=configs/camvid.py:tiny',
                      f'--config.data.root={camvid_root}', *TINY_OURS, '--steps=2', '--batch=2',
                      '--chunk=1', '--eval_images=2', '--torch_threads=2', '--precise_bn=2', f'--json={out}',
                      timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  text = result.stdout
  assert 'step 1/2  ours loss ' in text and '|  torchvision loss ' in text and 'step 2/2' in text
  rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()
          if line.split() and line.split()[0] in camvid.CAMVID_CLASSES}
  assert set(rows) == set(camvid.CAMVID_CLASSES) and all(len(v) == 4 for v in rows.values())
  assert 'precise BN: BatchNorm statistics averaged over 2 training batches' in text
  assert "precise BN: torchvision's" in text and 'torchvision+pBN' in text
  assert 'ours / torchvision images/s = ' in text
  with open(out) as f:
    report = json.load(f)
  assert set(report['sides']) == {'ours', 'torchvision'} and report['eval_images'] == 2
  for side in report['sides'].values():
    assert 0.0 <= side['miou'] <= 1.0 and side['images_per_s'] > 0
    assert 0.0 <= side['precise_bn']['miou'] <= 1.0
    assert list(side['per_class_iou']) == list(camvid.CAMVID_CLASSES)
  assert report['ratio'] == pytest.approx(report['sides']['ours']['images_per_s'] /
                                          report['sides']['torchvision']['images_per_s'])


def test_ablation_rows_add_the_inference_options_one_after_another():
  seen = []

  class Recorder:  # stands in for OurSide: what each row asked the evaluator for
    def evaluate(self, split, config, log):
      seen.append((config.model.eval_output_stride, tuple(config.eval.scales), config.eval.flip,
                   config.crf.enabled))
      plain = {'miou': 0.1 * len(seen), 'per_class_iou': {}}
      return dict(plain, crf={'miou': 0.5, 'per_class_iou': {}}) if config.crf.enabled else plain

  config = camvid.get_config('tiny')
  config.model.eval_output_stride = None
  rows = peer_train.ablation(Recorder(), None, config, ['os8', 'ms_flip', 'crf'], log=lambda _: None)
  base = tuple(config.eval.scales)
  ms = tuple(round(s * f, 4) for s in base for f in (0.75, 1.0, 1.25))
  assert seen == [(None, base, False, False), (8, base, False, False), (8, ms, True, False),
                  (8, ms, True, True)]
  assert [r['variant'] for r in rows] == ['as configured', 'os8', 'os8 + ms_flip', 'os8 + ms_flip + crf']
  assert [r['miou'] for r in rows] == pytest.approx([0.1, 0.2, 0.3, 0.5])  # the CRF row: its result
  assert config.crf.enabled is False and config.eval.flip is False  # the caller's config untouched
