"""deeplab_jax.Segmenter: a trained run in users' own code, through predict's code path."""
import os
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

import deeplab_jax
from deeplab_jax import checkpoint
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference, predict
from tests.conftest import ROOT
from tests.evaluate.conftest import save_checkpoint


@pytest.fixture(scope='module')
def workdir(tmp_path_factory, tiny_model):
  """A run folder as training leaves it: config.json and a checkpoint at step 3."""
  from tests.conftest import tiny_config
  path = str(tmp_path_factory.mktemp('run'))
  config = tiny_config()
  checkpoint.prepare_workdir(path, config)
  save_checkpoint(path, config, tiny_model[1], 3)
  return path


@pytest.fixture(scope='module')
def segmenter(workdir):
  return deeplab_jax.Segmenter.from_workdir(workdir)


def _image(h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _reference(model, variables, image, config, setting=inference.Setting()):
  """softmax of the model on the normalised image, computed directly (no padding needed: 65 = 64 + 1)."""
  x = (image.astype(np.float32) - np.float32(config.data.mean)) / np.float32(config.data.std)
  return np.asarray(inference.probabilities(inference.model_logits(model), variables, x[None], setting))[0]


def test_probabilities_and_labels_equal_the_model(segmenter, tiny):
  config, model, variables = tiny
  assert segmenter.step == 3 and segmenter.class_names == tuple(config.data.class_names)
  image = _image(65, 65)
  probs = segmenter.probabilities(image)
  assert probs.shape == (65, 65, config.data.num_classes) and probs.dtype == np.float32
  np.testing.assert_allclose(probs, _reference(model, variables, image, config), atol=1e-5)
  labels = segmenter(image)
  assert labels.shape == (65, 65) and labels.dtype == np.uint8
  np.testing.assert_array_equal(labels, probs.argmax(-1))
  assert len(np.unique(labels)) > 1


def test_flip_and_output_stride_reach_the_model(workdir, tiny):
  config, _, variables = tiny
  from deeplab_jax.models.deeplab import build_model
  segmenter = deeplab_jax.Segmenter.from_workdir(workdir, output_stride=8, flip=True)
  image = _image(65, 65, seed=1)
  expected = _reference(build_model(config, train=False, output_stride=8), variables, image, config,
                        inference.Setting(flip=True, corner_aligned=True))
  np.testing.assert_allclose(segmenter.probabilities(image), expected, atol=1e-5)


def test_any_size_any_form_and_batches(segmenter, tmp_path):
  sizes = [(30, 44), (50, 20), (70, 90)]
  images = [_image(h, w, seed=i) for i, (h, w) in enumerate(sizes)]
  outputs = segmenter(images)
  assert [o.shape for o in outputs] == sizes
  Image.fromarray(images[0]).save(tmp_path / 'a.png')
  opaque = np.dstack([images[0], np.full((30, 44), 255, np.uint8)])
  for same in (Image.fromarray(images[0]), str(tmp_path / 'a.png'), opaque):
    np.testing.assert_array_equal(segmenter(same), outputs[0])
  # The same function as --mode=predict's, for the same config.
  from deeplab_jax.evaluate import run
  probs_fn = run.make_probs_fn(segmenter.config, segmenter.variables)
  np.testing.assert_array_equal(predict.predict_labels(probs_fn, images[2], segmenter.config), outputs[2])
  stacked = segmenter(np.stack([images[0], images[0]]))
  assert stacked.shape == (2, 30, 44)
  np.testing.assert_array_equal(stacked[1], outputs[0])
  grey = segmenter(images[1][..., 0])  # [H, W] greyscale works too
  assert grey.shape == (50, 20)


@pytest.mark.parametrize('bad', [np.zeros((4, 4, 3), np.float32), np.zeros((4, 4, 2), np.uint8),
                                 np.zeros((0, 4, 3), np.uint8), 'not an image', 3])
def test_not_an_image_is_a_user_error(segmenter, bad):
  with pytest.raises(UserError, match='Not an image|not a readable image'):
    segmenter(bad)


def test_a_text_file_is_a_user_error(segmenter, tmp_path):
  (tmp_path / 'notes.txt').write_text('hello')
  with pytest.raises(UserError, match='notes.txt: not a readable image'):
    segmenter(str(tmp_path / 'notes.txt'))


def test_bad_workdirs_and_steps_are_user_errors(workdir, segmenter, tmp_path):
  with pytest.raises(UserError, match='config.json does not exist'):
    deeplab_jax.Segmenter.from_workdir(str(tmp_path))
  empty = tmp_path / 'empty'
  checkpoint.prepare_workdir(str(empty), segmenter.config)
  with pytest.raises(UserError, match='does not exist|No checkpoint'):
    deeplab_jax.Segmenter.from_workdir(str(empty))
  os.makedirs(empty / 'checkpoints')
  with pytest.raises(UserError, match='No checkpoint in'):
    deeplab_jax.Segmenter.from_workdir(str(empty))
  with pytest.raises(UserError, match=r'No checkpoint for step 9 .* it has steps \[3\]'):
    deeplab_jax.Segmenter.from_workdir(workdir, step=9)


def test_import_stays_light():
  code = 'import sys, deeplab_jax; print("jax" in sys.modules, "flax" in sys.modules)'
  result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
  assert result.stdout.split() == ['False', 'False'], result.stderr
