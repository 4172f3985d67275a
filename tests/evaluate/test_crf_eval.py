"""The dense CRF in evaluation: it raises a coarse model's mIoU, and the eval JSON holds both results."""
import json

import jax
import numpy as np
import pytest

from deeplab_jax import sharding
from deeplab_jax.data import pipeline, synthetic, voc
from deeplab_jax.evaluate import evaluator, inference, metrics, predict
from deeplab_jax.ops import crf
from tests.conftest import final_eval, run_main, tiny_config

pytestmark = pytest.mark.xdist_group('quickstart')  # one worker builds the session's quickstart_run

COARSE_STRIDE = 32


@pytest.fixture(scope='module')
def val_root(tmp_path_factory):
  """A synthetic val split of quickstart-like images (larger than the shared fixture's)."""
  root = str(tmp_path_factory.mktemp('crf_synthetic'))
  synthetic.generate(root, num_train=1, num_val=8, min_size=100, max_size=140, seed=5,
                     log=lambda _: None)
  return root


def coarse_probabilities(labels: np.ndarray, num_classes: int, ignore_label: int) -> np.ndarray:
  """A stand-in for an output-stride-32 model: [B, H, W] labels -> [B, H, W, C] probabilities.

  The one-hot labels are averaged over 32 x 32 cells (what a stride-32 feature map can resolve),
  bilinearly upsampled back and mixed with a uniform guess, so boundaries are blurred by ~a cell.
  """
  batch, height, width = labels.shape
  onehot = np.eye(num_classes, dtype=np.float32)[np.where(labels == ignore_label, 0, labels)]
  pad = ((0, 0), (0, -height % COARSE_STRIDE), (0, -width % COARSE_STRIDE), (0, 0))
  padded = np.pad(onehot, pad, mode='edge')
  cells = padded.reshape(batch, padded.shape[1] // COARSE_STRIDE, COARSE_STRIDE,
                         padded.shape[2] // COARSE_STRIDE, COARSE_STRIDE, num_classes).mean((2, 4))
  up = jax.image.resize(cells, (batch, *padded.shape[1:3], num_classes), 'bilinear')
  return 0.7 * np.asarray(up)[:, :height, :width] + 0.3 / num_classes


def _miou(confusion: np.ndarray) -> float:
  return metrics.summarize(confusion)['miou']


def test_crf_raises_miou_of_an_output_stride_32_model(quickstart_run, tmp_path):
  """The quickstart model fine-tuned at output stride 32, evaluated with DeepLab v2's CRF settings
  (configs/base.py: w1 4, theta_alpha 67, theta_beta 3, w2 3, theta_gamma 3).

  Its logits are 1/32 of the image, bilinearly upsampled: blobs of the right class that miss the
  object outlines, which is what the CRF's colour-and-position kernels repair. (A model still
  confusing whole objects gains nothing: the same network trained from scratch at OS 32 for 1200
  steps, 44.5 % mIoU, lost 1.7 points.)
  """
  workdir, data_root, _ = quickstart_run
  coarse = str(tmp_path / 'os32')
  result = run_main('--config=configs/quickstart.py', f'--workdir={coarse}',
                    f'--config.data.root={data_root}', '--config.model.output_stride=32',
                    '--config.train.num_steps=300', '--config.train.base_lr=0.01',
                    f'--config.train.init_checkpoint={workdir}/checkpoints', '--config.crf.enabled=True')
  assert result.returncode == 0, result.stderr[-3000:]
  results = final_eval(coarse)
  plain, with_crf = results['miou'], results['crf']['miou']
  print(f'OS 32 model: val mIoU {100 * plain:.2f} -> {100 * with_crf:.2f} with the CRF')
  assert results['output_stride'] == 32 and results['crf']['params']['theta_beta'] == 3.
  assert with_crf > plain + 0.02


def test_crf_sharpens_blurred_labels(val_root):
  config = tiny_config(val_root)
  data = config.data
  data.eval_size = 144
  split = voc.read_split(val_root, 'val', 'SegmentationClass')
  mesh = sharding.make_mesh()
  refine = jax.jit(evaluator.crf_refiner(mesh, crf.from_config(config.crf), data))
  confusion = np.zeros((2, data.num_classes, data.num_classes), np.int64)
  for batch in pipeline.eval_batches(split, data, config.eval.batch_size):
    probs = coarse_probabilities(batch['label'], data.num_classes, data.ignore_label)
    refined = np.asarray(refine(probs, batch['image'], batch['label']))
    for k, p in enumerate((probs, refined)):
      confusion[k] += np.asarray(metrics.confusion_matrix(batch['label'], p.argmax(-1),
                                                          data.num_classes, data.ignore_label))
  plain, with_crf = _miou(confusion[0]), _miou(confusion[1])
  print(f'stride-{COARSE_STRIDE} stand-in: mIoU {100 * plain:.2f} -> {100 * with_crf:.2f} with CRF')
  assert with_crf > plain + 0.02


def test_eval_json_holds_results_with_and_without_crf(tiny, synthetic_root, tmp_path):
  config, _, variables = tiny
  config.data.root = synthetic_root
  split = voc.read_split(synthetic_root, 'val', 'SegmentationClass')
  mesh = sharding.make_mesh()
  variables = jax.device_put(variables, sharding.replicated(mesh))
  plain = evaluator.evaluate(variables, split, config, mesh, log=lambda _: None)
  assert 'crf' not in plain
  config.crf.enabled, config.crf.iterations = True, 3
  lines = []
  results = evaluator.evaluate(variables, split, config, mesh, log=lines.append)
  path = evaluator.write_results(str(tmp_path), split.name, 7, results, tensorboard=False)
  with open(path) as f:
    saved = json.load(f)
  # Top level: exactly the CRF-free evaluation; 'crf': the refined one and the settings used.
  assert saved['confusion_matrix'] == plain['confusion_matrix'] and saved['miou'] == plain['miou']
  refined = saved['crf']
  assert refined['params'] == dict(w1=4., theta_alpha=67., theta_beta=3., w2=3., theta_gamma=3.,
                                   iterations=3, method='permutohedral', normalization='symmetric')
  assert 0 <= refined['miou'] <= 1 and set(refined['per_class_iou']) == set(config.data.class_names)
  assert np.sum(refined['confusion_matrix']) == np.sum(saved['confusion_matrix'])
  assert 'CRF' in lines[-1]
  assert 'with dense CRF: mIoU' in evaluator.format_results(results)


def test_predict_refines_the_image_not_its_padding(tiny):
  config, model, variables = tiny
  params = crf.CRFParams(method='exact', iterations=3)  # exact: padding must change nothing at all
  image = np.random.default_rng(0).integers(0, 256, (40, 36, 3)).astype(np.uint8)
  normalised = (image - np.float32(config.data.mean)) / np.float32(config.data.std)
  padded = np.pad(normalised, ((0, 24), (0, 28), (0, 0)))[None]
  base = predict.make_probs_fn(model, variables, inference.Setting())
  refined = predict.make_probs_fn(model, variables, inference.Setting(), crf_params=params,
                                  mean=config.data.mean, std=config.data.std)
  probs = np.asarray(base(padded))[:, :40, :36]
  want = crf.dense_crf(np.log(np.maximum(probs, 1e-30)), image[None], params)
  np.testing.assert_allclose(np.asarray(refined(padded))[:, :40, :36], want, atol=1e-4)
