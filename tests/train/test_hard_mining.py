"""Hard pixel mining in both scopes against the official DeepLab's formula written out in numpy
(train_utils.add_softmax_cross_entropy_loss_for_each_scale) and a per-image reference."""
import jax.numpy as jnp
import numpy as np
import pytest

from configs import base
from deeplab_jax.train import losses, optimizer, steps


def _case(seed=0):
  """logits [2, 6, 5, 4]; the second image mostly ignored; class 3 weighted 0 (losses exactly 0)."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 2, size=(2, 6, 5, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 6, 5))
  labels[1, :5] = 255
  weights = np.array([1.0, 2.0, 0.5, 0.0], np.float32)
  return logits, labels, weights


def _official(logits, labels, weights, fraction, ignore=255):
  """The official code: weighted pixel losses of the flattened batch, ignored pixels weight 0;
  top_k_pixels = int(fraction * num_pixels); loss = sum(top-k) / count(top-k != 0)."""
  flat_logits = logits.reshape(-1, logits.shape[-1]).astype(np.float64)
  flat_labels = labels.reshape(-1)
  log_probs = flat_logits - np.log(np.exp(flat_logits).sum(-1, keepdims=True))
  safe = np.where(flat_labels == ignore, 0, flat_labels)
  pixel_losses = -log_probs[np.arange(flat_labels.size), safe]
  label_weights = np.where(flat_labels == ignore, 0.0, weights[safe])
  weighted = pixel_losses * label_weights
  k = int(np.float32(fraction) * np.float32(flat_labels.size))
  top = np.sort(weighted)[::-1][:k]
  present = np.sum(top != 0)
  return top.sum() / present if present else 0.0


@pytest.mark.parametrize('fraction', [0.3, 0.9])
def test_batch_scope_is_the_official_top_k_over_the_flattened_batch(fraction):
  logits, labels, weights = _case()
  got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), 255, tuple(weights),
                             top_k=fraction, top_k_scope='batch')
  np.testing.assert_allclose(float(got), _official(logits, labels, weights, fraction), rtol=1e-5)
  # The per-image scope (what the step computed before) is another loss on the same batch.
  per_image = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), 255, tuple(weights),
                                   top_k=fraction, top_k_scope='image')
  assert abs(float(per_image) - float(got)) > 1e-3


def test_batch_scope_with_a_traced_fraction_matches_the_ramp():
  # At step 0 of a ramp the fraction is 1: all pixels, divided by the non-zero ones (not the labelled).
  logits, labels, weights = _case(1)
  fraction = losses.top_k_fraction(jnp.asarray(0), 25.0, 100)
  got = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), 255, tuple(weights),
                             top_k=fraction, top_k_scope='batch')
  np.testing.assert_allclose(float(got), _official(logits, labels, weights, 1.0), rtol=1e-5)


def test_configs_following_the_official_code_mine_as_it_does():
  config = base.get_config()
  assert config.train.top_k_scope == 'batch'
  assert steps.step_options(config, optimizer.poly_schedule(config.train)).top_k_scope == 'batch'
  config.train.top_k_scope = 'pixels'
  with pytest.raises(Exception, match='top_k_scope'):
    steps.step_options(config, optimizer.poly_schedule(config.train))
