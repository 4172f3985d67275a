"""Multi-scale / flip inference against independent recomputations, and sliding-window tiles."""
import jax
import numpy as np
import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference
from deeplab_jax.models import layers

pytestmark = pytest.mark.xdist_group('inference')  # one worker builds this file's shared fixtures


def logits_of(model):
  return lambda v, x: model.apply(v, x)['logits']


def softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(1).normal(size=(2, 40, 56, 3)).astype(np.float32)


def test_plain_setting_is_the_softmax_of_the_model(tiny, images):
  _, model, variables = tiny
  probs = inference.probabilities(logits_of(model), variables, images)
  expected = softmax(np.asarray(model.apply(variables, images)['logits']))
  np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_flip_averages_the_model_on_the_mirrored_image_mirrored_back(tiny, images):
  _, model, variables = tiny
  flip = inference.Setting((1.0,), flip=True)
  probs = np.asarray(inference.probabilities(logits_of(model), variables, images, flip))
  direct = softmax(np.asarray(model.apply(variables, images)['logits']))
  mirrored = softmax(np.asarray(model.apply(variables, images[:, :, ::-1])['logits']))[:, :, ::-1]
  np.testing.assert_allclose(probs, (direct + mirrored) / 2, atol=1e-5)
  # Flip inference is mirror-symmetric although the model is not.
  probs_of_mirror = np.asarray(inference.probabilities(logits_of(model), variables,
                                                       images[:, :, ::-1], flip))
  np.testing.assert_allclose(probs_of_mirror, probs[:, :, ::-1], atol=1e-5)
  assert not np.allclose(mirrored, direct, atol=1e-3)


def torch_resize(x, size):
  """NHWC numpy -> bilinear, half-pixel, no antialias (DeepLab's / PyTorch's sampling)."""
  torch = pytest.importorskip('torch')  # the peer: its test skips without it, the others still run
  t = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2)
  out = torch.nn.functional.interpolate(t, size=size, mode='bilinear', align_corners=False)
  return out.permute(0, 2, 3, 1).numpy()


def test_multi_scale_matches_a_torch_resized_recomputation(tiny, images):
  _, model, variables = tiny
  setting = inference.Setting((0.5, 1.25), flip=False)
  probs = np.asarray(inference.probabilities(logits_of(model), variables, images, setting))
  expected = 0
  for scale, size in ((0.5, (20, 28)), (1.25, (50, 70))):
    assert layers.scaled_size((40, 56), scale, corner_aligned=False) == size
    logits = np.asarray(model.apply(variables, torch_resize(images, size))['logits'])
    expected = expected + torch_resize(softmax(logits), (40, 56)) / 2
  np.testing.assert_allclose(probs, expected, atol=1e-5)
  np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)


def test_settings_parse_and_name():
  setting = inference.parse_setting('0.5, 0.75,1+flip')
  assert setting == inference.Setting((0.5, 0.75, 1.0), True)
  assert setting.tag == 's0.5-0.75-1_flip' and not setting.is_plain
  assert inference.parse_setting('1').is_plain
  for bad in ('', 'a,b', '0.5+mirror', '-1'):
    with pytest.raises(UserError, match='Bad inference setting'):
      inference.parse_setting(bad)


def test_tiles_of_a_pointwise_model_equal_the_whole_image():
  rng = np.random.default_rng(2)
  weights = rng.normal(size=(3, 5)).astype(np.float32)
  pointwise = lambda x: jax.nn.softmax(x @ weights, -1)  # noqa: E731  each pixel on its own
  image = rng.normal(size=(70, 101, 3)).astype(np.float32)
  seen = []
  probs = inference.tiled_probabilities(lambda x: seen.append(x.shape) or pointwise(x), image, 32, 0.25)
  np.testing.assert_allclose(probs, pointwise(image), atol=1e-5)
  assert set(seen) == {(1, 32, 32, 3)}  # one compiled shape, whatever the image size
  assert len(seen) == 3 * 4  # stride 24: rows 0, 24, 38 (flush); columns 0, 24, 48, 69 (flush)
  # Rectangular windows, 5 at a time: 24x40 windows at strides 18/30 -> rows 0, 18, 36, 46 (flush),
  # columns 0, 30, 60, 61 (flush): 16 windows in runs of 5, 5, 5 and 1.
  seen.clear()
  probs = inference.tiled_probabilities(lambda x: seen.append(x.shape) or pointwise(x), image, (24, 40),
                                        0.25, batch=5)
  np.testing.assert_allclose(probs, pointwise(image), atol=1e-5)
  assert seen == [(5, 24, 40, 3)] * 3 + [(1, 24, 40, 3)]


def test_batched_probabilities_keep_the_order_and_compile_few_shapes():
  seen = []
  items = [np.full((2, 3, 1), k, np.float32) for k in range(13)]
  out = list(inference.batched_probabilities(lambda x: seen.append(len(x)) or x * 2, iter(items), 8))
  assert seen == [8, 4, 1] and len(out) == 13
  for k, probs in enumerate(out):
    np.testing.assert_array_equal(probs, 2 * items[k])
  assert list(inference.batched_probabilities(lambda x: x, iter([]), 8)) == []
