"""Evaluation of images larger than the eval canvas (data.eval_protocol 'resize' and 'slide'), with
metrics against the original-resolution labels."""
import jax
import numpy as np
from PIL import Image
import pytest

from deeplab_jax import sharding
from deeplab_jax.data import datasets
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import evaluator, inference, predict
from deeplab_jax.models.deeplab import build_model
from tests.conftest import tiny_config


@pytest.fixture(scope='module')
def tiny_variables():
  """Variables of the tiny model with random statistics and a tilted classifier (no near-ties)."""
  model = build_model(tiny_config(), train=False)
  variables = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 48, 48, 3), np.float32))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda x: np.asarray(x) + 0.3 * rng.normal(size=x.shape).astype(x.dtype),
                           variables)
  variables['batch_stats'] = jax.tree.map(np.abs, variables['batch_stats'])
  return variables


def smooth_image(seed: int, side: int) -> np.ndarray:
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:side, 0:side] / side
  waves = [np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + rng.uniform(1, 3) * yy) + rng.uniform(0, 6))
           for _ in range(3)]
  return np.clip(127.5 + 120 * np.stack(waves, -1), 0, 255).astype(np.uint8)


def write(root, split: str, images, labels):
  for k, (image, label) in enumerate(zip(images, labels)):
    for folder, array in (('images', image), ('labels', label)):
      (root / folder / split).mkdir(parents=True, exist_ok=True)
      Image.fromarray(array).save(root / folder / split / f'{k}.png')


def config_for(root, split: str, protocol: str, canvas=65):
  config = tiny_config(str(root))
  data = config.data
  data.dataset, data.label_dir, data.num_classes, data.eval_split = 'folder', 'labels', 6, split
  data.eval_size, data.eval_protocol = canvas, protocol
  config.eval.batch_size = 8
  return config


def evaluate(variables, root, split, protocol, canvas=65):
  config = config_for(root, split, protocol, canvas)
  mesh = sharding.make_mesh()
  return evaluator.evaluate(jax.device_put(variables, sharding.replicated(mesh)),
                            datasets.read_split(config.data, split), config, mesh, log=lambda _: None)


@pytest.mark.parametrize('canvas', [65, (65, 97)])
def test_resize_and_slide_equal_pad_on_images_the_size_of_the_canvas(tmp_path, tiny_variables, canvas):
  """Also on a rectangular canvas: 'slide' windows are the canvas (height x width), not its shorter side."""
  h, w = (canvas, canvas) if isinstance(canvas, int) else canvas
  labels = [np.random.default_rng(k).integers(0, 6, (h, w)).astype(np.uint8) for k in range(3)]
  write(tmp_path, 'fit', [smooth_image(k, w)[:h] for k in range(3)], labels)
  pad = evaluate(tiny_variables, tmp_path, 'fit', 'pad', canvas)
  for protocol in ('resize', 'slide'):
    results = evaluate(tiny_variables, tmp_path, 'fit', protocol, canvas)
    np.testing.assert_array_equal(results['confusion_matrix'], pad['confusion_matrix'])


def test_resize_predicts_at_the_original_resolution(tmp_path, tiny_variables):
  """A 129x129 image whose even pixels are a 65x65 one: with corner-aligned resizing it is scaled to
  exactly that image and its probabilities back to exactly theirs at the even pixels, so with the
  label there (odd pixels ignored) the metrics equal the small image's."""
  small = [smooth_image(k, 65) for k in range(2)]
  labels = [np.random.default_rng(k).integers(0, 6, (65, 65)).astype(np.uint8) for k in range(2)]
  large = [np.zeros((129, 129, 3), np.uint8) for _ in small]
  large_labels = [np.full((129, 129), 255, np.uint8) for _ in small]
  for image, label, s, lab in zip(large, large_labels, small, labels):
    image[::2, ::2], label[::2, ::2] = s, lab
    image[1::2], image[:, 1::2] = 200, 200  # what lies between is not read at the even samples
  write(tmp_path, 'small', small, labels)
  write(tmp_path, 'large', large, large_labels)
  with pytest.raises(UserError, match=r'^Bad input data: image larger than data.eval_size 65x65 \(height x '
                                      r'width\); raise it, or set data.eval_protocol to resize or slide: '
                                      r'.*large/0.png$'):
    evaluate(tiny_variables, tmp_path, 'large', 'pad')
  expected = evaluate(tiny_variables, tmp_path, 'small', 'pad')
  resized = evaluate(tiny_variables, tmp_path, 'large', 'resize')
  np.testing.assert_array_equal(resized['confusion_matrix'], expected['confusion_matrix'])
  assert resized['protocol'] == 'resize' and resized['samples'][0].shape == (129, 3 * 129 + 8, 3)


@pytest.mark.parametrize('protocol', ['resize', 'slide'])
def test_with_a_crf_the_model_runs_once_per_canvas(tmp_path, tiny_variables, protocol, monkeypatch):
  """One pass gives the plain and the refined probabilities (before: a second pass, and a second
  resize of every image, for the CRF)."""
  labels = [np.random.default_rng(k).integers(0, 6, (100, 150)).astype(np.uint8) for k in range(2)]
  write(tmp_path, 'wide', [smooth_image(k, 150)[:100] for k in range(2)], labels)
  built, canvases = [], []
  real = predict.make_probs_fn

  def counting(*args, **kwargs):
    built.append(kwargs)
    fn = real(*args, **kwargs)
    return lambda x: canvases.append(x.shape[0]) or fn(x)

  monkeypatch.setattr(predict, 'make_probs_fn', counting)
  config = config_for(tmp_path, 'wide', protocol)
  config.crf.enabled, config.crf.iterations = True, 2
  mesh = sharding.make_mesh()
  results = evaluator.evaluate(jax.device_put(tiny_variables, sharding.replicated(mesh)),
                               datasets.read_split(config.data, 'wide'), config, mesh, log=lambda _: None)
  stride = max(1, int(65 * (1 - config.data.eval_overlap)))
  windows = len(inference._tile_starts(100, 65, stride)) * len(inference._tile_starts(150, 65, stride))
  assert len(built) == 1 and built[0]['crf_params'] is not None
  assert sum(canvases) == (2 if protocol == 'resize' else 2 * windows)
  assert np.sum(results['crf']['confusion_matrix']) == np.sum(results['confusion_matrix']) == 2 * 100 * 150


def test_slide_counts_every_original_pixel(tmp_path, tiny_variables):
  labels = [np.random.default_rng(5).integers(0, 6, (100, 150)).astype(np.uint8)]
  labels[0][:5] = 255
  write(tmp_path, 'wide', [np.asarray(Image.fromarray(smooth_image(3, 150)).crop((0, 0, 150, 100)))],
        labels)
  results = evaluate(tiny_variables, tmp_path, 'wide', 'slide')
  assert np.sum(results['confusion_matrix']) == 95 * 150  # each unignored original pixel once
  config = config_for(tmp_path, 'wide', 'tiles')
  with pytest.raises(UserError, match=r"data.eval_protocol is 'tiles'; expected one of"):
    evaluator.evaluate(tiny_variables, datasets.read_split(config.data, 'wide'), config,
                       sharding.make_mesh(), log=lambda _: None)


def test_ade20k_configs_read_the_layout_with_the_official_protocol(tmp_path):
  import importlib

  from deeplab_jax.data import pipeline
  from tests.data import miniatures
  root = miniatures.ade20k(str(tmp_path / 'ADEChallengeData2016'))
  for name in ('v3_ade20k', 'v3plus_ade20k'):
    config = importlib.import_module(f'configs.{name}').get_config()
    data = config.data
    assert (data.num_classes, len(data.class_names), data.eval_protocol) == (150, 150, 'resize')
    data.root, data.expect_counts = root, False
    train, val = datasets.load_splits(data, log=lambda _: None)
    assert (len(train), len(val)) == (3, 2)
    batch = next(pipeline.whole_examples(val, data))
    np.testing.assert_array_equal(batch['label'][0], miniatures.stripes((255, 0, 149)))
