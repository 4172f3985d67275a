"""data.normalization reaches every place an image enters or leaves the model: predict, export (and its
metadata), the CRF's colours and the eval pictures; data.palette colours the pictures and label PNGs."""
import json

import jax
import numpy as np
from PIL import Image

from deeplab_jax import sharding
from deeplab_jax.data import normalization
from deeplab_jax.evaluate import evaluator, export, inference, predict, run
from tests.evaluate.conftest import save_checkpoint

CAMVID_SKY = (128, 128, 128)


def inception(config):
  config.data.normalization = 'inception'
  return config


def test_mean_std_by_name(tiny):
  config, _, _ = tiny
  assert normalization.mean_std(config.data) == (tuple(config.data.mean), tuple(config.data.std))
  assert normalization.mean_std(inception(config).data) == ((127.5,) * 3, (127.5,) * 3)


def test_predict_feeds_the_inception_range(tiny):
  config = inception(tiny[0])
  seen = []

  def probs_fn(x):
    seen.append(np.asarray(x))
    return np.zeros((*x.shape[:3], config.data.num_classes), np.float32)

  image = np.random.default_rng(0).integers(0, 256, (30, 44, 3), dtype=np.uint8)
  predict.predict_labels(probs_fn, image, config)
  np.testing.assert_allclose(seen[0][0, :30, :44], (image - 127.5) / 127.5, atol=1e-6)
  assert seen[0].min() >= -1 and seen[0].max() <= 1  # ImageNet statistics would reach -2.1 and 2.6


def test_export_normalises_inside_as_trained_and_says_so(tiny, tmp_path):
  config, model, variables = tiny
  inception(config)
  save_checkpoint(str(tmp_path), config, variables, 3)
  config.export.image_size, config.export.batch_size, config.export.output = 32, 1, 'probabilities'
  path = run.export_model(config, str(tmp_path), log=lambda _: None)
  images = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
  expected = jax.nn.softmax(model.apply(variables, (images - 127.5) / 127.5)['logits'], -1)
  np.testing.assert_allclose(export.load(path).call(images), expected, atol=1e-5)
  with open(export.metadata_path(path)) as f:
    meta = json.load(f)
  assert meta['normalization_inside'] == {'normalization': 'inception', 'mean': [127.5] * 3,
                                          'std': [127.5] * 3}
  assert meta['step'] == 3 and meta['class_names'] == list(config.data.class_names)


def test_eval_pictures_undo_the_runs_normalisation_and_use_its_palette(tiny):
  config, _, _ = tiny
  inception(config)
  config.data.palette = (CAMVID_SKY,)
  image = np.random.default_rng(2).integers(0, 256, (8, 8, 3), dtype=np.uint8)
  batch = {'image': normalization.normalize(image, config.data)[None], 'label': np.zeros((1, 8, 8), np.int32)}
  (picture,) = evaluator._triples(batch, np.zeros((1, 8, 8), np.int32), 1, config.data)
  np.testing.assert_array_equal(picture[:, :8], image)  # ImageNet's mean/std would distort it
  assert tuple(picture[0, 12]) == CAMVID_SKY  # the label panel, class 0 in data.palette


def test_crf_sees_the_rgb_the_run_was_fed(tiny):
  """The CRF's bilateral kernel measures colour in 0..255: with 'inception' data the refiner must undo
  (x - 127.5) / 127.5, not ImageNet's statistics."""
  config, _, _ = tiny
  inception(config)
  image = np.random.default_rng(3).integers(0, 256, (1, 6, 6, 3)).astype(np.float32)
  probs = jax.nn.softmax(np.random.default_rng(4).normal(size=(1, 6, 6, 3)).astype(np.float32), -1)
  params = evaluator.config_crf(config)
  if params is None:
    config.crf.enabled = True
    params = evaluator.config_crf(config)
  mesh = sharding.make_mesh(jax.devices()[:1])
  refined = evaluator.crf_refiner(mesh, params, config.data)(
      probs, normalization.normalize(image, config.data), np.zeros((1, 6, 6), np.int32))
  valid = np.ones((1, 6, 6), bool)
  expected = inference.crf_probabilities(probs, (image - 127.5) / 127.5, valid, (127.5,) * 3, (127.5,) * 3,
                                         params)
  np.testing.assert_allclose(refined, expected, atol=1e-6)
  imagenet = inference.crf_probabilities(probs, (image - 127.5) / 127.5, valid, config.data.mean,
                                         config.data.std, params)
  assert np.abs(np.asarray(imagenet) - np.asarray(expected)).max() > 1e-3  # the colours matter here


def test_label_png_in_the_config_palette(tmp_path):
  labels = np.zeros((4, 4), np.uint8)
  colors = np.zeros((256, 3), np.uint8)
  colors[0] = CAMVID_SKY
  predict.write_prediction(str(tmp_path), 'a', np.zeros((4, 4, 3), np.uint8), labels, colors)
  assert tuple(Image.open(tmp_path / 'a.png').convert('RGB').getpixel((0, 0))) == CAMVID_SKY
