"""Learning on real images: CamVid's street scenes (../shared/data/camvid, or $DEEPLAB_JAX_CAMVID), read
in place; the run's workdir is a temporary folder. Skips when the data is absent."""
import glob
import os

import numpy as np
from PIL import Image
import pytest

from configs import camvid
from deeplab_jax.evaluate import metrics
from tests.conftest import ROOT, final_eval, run_main

CAMVID = os.environ.get('DEEPLAB_JAX_CAMVID') or os.path.join(ROOT, '..', 'shared', 'data', 'camvid')


def spatial_prior_miou(root: str) -> float:
  """val mIoU of the per-pixel class prior: at each pixel position, train's most frequent class there."""
  def stack(folder):
    paths = sorted(glob.glob(os.path.join(root, folder, '*.png')))
    return np.stack([np.asarray(Image.open(p)) for p in paths])
  train, val = stack('trainannot'), stack('valannot')
  num_classes, void = len(camvid.CAMVID_CLASSES), camvid.CAMVID_VOID
  prior = np.stack([(train == c).sum(0) for c in range(num_classes)], -1).argmax(-1)
  keep = val != void
  predictions = np.broadcast_to(prior, val.shape)
  confusion = np.bincount(val[keep].astype(np.int64) * num_classes + predictions[keep],
                          minlength=num_classes ** 2).reshape(num_classes, num_classes)
  return metrics.summarize(confusion)['miou']


def test_camvid_street_scenes_are_learned_far_beyond_the_class_prior(tmp_path):
  """Real data: configs/camvid.py:tiny (v3 on a small ResNet, quarter resolution, 400 steps, about two
  minutes) on CamVid's 367 train images, evaluated on its 101 val images against the full-resolution
  labels. The per-pixel class prior gets 16.7 val mIoU; this run got 27.3 (2026-12-01)."""
  if not os.path.isdir(os.path.join(CAMVID, 'trainannot')):
    pytest.skip(f'CamVid not found in {CAMVID} (DEEPLAB_JAX_CAMVID)')
  workdir = str(tmp_path / 'run')
  result = run_main('--config=configs/camvid.py:tiny', f'--config.data.root={CAMVID}', f'--workdir={workdir}',
                    timeout=1200)
  assert result.returncode == 0, result.stderr[-3000:]
  results, baseline = final_eval(workdir), spatial_prior_miou(CAMVID)
  print(f'val mIoU {results["miou"]:.4f}, per-pixel class prior {baseline:.4f}')
  assert results['miou'] >= baseline + 0.06, results['per_class_iou']
  assert results['per_class_iou']['road'] > 0.6 and results['per_class_iou']['car'] > 0.05
  # The eval strip (image | ground truth | prediction) is in CamVid's palette: sky is (128, 128, 128).
  strip = np.asarray(Image.open(os.path.join(workdir, 'eval', 'val_step400_examples.png')).convert('RGB'))
  assert (strip == camvid.CAMVID_PALETTE[0]).all(-1).mean() > 0.02
