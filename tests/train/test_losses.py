"""Cross-entropy ignores label 255."""
import jax
import jax.numpy as jnp
import numpy as np

from deeplab_jax.train import losses


def numpy_cross_entropy(logits, labels, ignore):
  valid = labels != ignore
  z = logits - logits.max(-1, keepdims=True)
  log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
  picked = np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0]
  return -(picked * valid).sum() / valid.sum()


def test_matches_numpy_over_valid_pixels():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(2, 5, 7, 4)).astype(np.float32)
  labels = rng.integers(0, 4, size=(2, 5, 7))
  labels[0, :2] = 255
  loss = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), 255)
  np.testing.assert_allclose(loss, numpy_cross_entropy(logits, labels, 255), rtol=1e-5)


def test_ignored_pixels_get_no_gradient_and_do_not_change_the_loss():
  rng = np.random.default_rng(1)
  logits = jnp.asarray(rng.normal(size=(1, 4, 4, 3)).astype(np.float32))
  labels = jnp.asarray(rng.integers(0, 3, size=(1, 4, 4))).at[0, 0].set(255)
  grads = jax.grad(losses.cross_entropy)(logits, labels, 255)
  assert np.all(np.asarray(grads[0, 0]) == 0)
  assert np.any(np.asarray(grads[0, 1]) != 0)
  changed = logits.at[0, 0].add(100.0)
  np.testing.assert_allclose(losses.cross_entropy(changed, labels, 255),
                             losses.cross_entropy(logits, labels, 255))


def test_all_ignored_gives_zero():
  assert float(losses.cross_entropy(jnp.ones((1, 2, 2, 3)), jnp.full((1, 2, 2), 255), 255)) == 0.0


def test_deeplab_loss_msc_has_four_terms_and_aux_is_weighted():
  rng = np.random.default_rng(2)
  maps = [jnp.asarray(rng.normal(size=(1, 4, 5, 3)).astype(np.float32)) for _ in range(4)]
  labels = jnp.asarray(rng.integers(0, 3, size=(1, 4, 5)))
  outputs = {'logits': jnp.max(jnp.stack(maps[:3]), 0), 'scale_logits': maps[:3]}
  total, terms = losses.deeplab_loss(outputs, labels, 255)
  assert sorted(terms) == ['logits', 'scale0', 'scale1', 'scale2']
  expected = sum(numpy_cross_entropy(np.asarray(m), np.asarray(labels), 255)
                 for m in [outputs['logits']] + maps[:3])
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  total_aux, terms = losses.deeplab_loss({'logits': maps[0], 'aux': maps[3]}, labels, 255, 0.4)
  np.testing.assert_allclose(total_aux, numpy_cross_entropy(np.asarray(maps[0]), np.asarray(labels), 255)
                             + 0.4 * numpy_cross_entropy(np.asarray(maps[3]), np.asarray(labels), 255),
                             rtol=1e-5)
  assert sorted(terms) == ['aux', 'logits']


def numpy_per_pixel(logits, labels, ignore, weights):
  valid = labels != ignore
  z = logits - logits.max(-1, keepdims=True)
  log_probs = z - np.log(np.exp(z).sum(-1, keepdims=True))
  safe = np.where(valid, labels, 0)
  loss = -np.take_along_axis(log_probs, safe[..., None], -1)[..., 0] * np.asarray(weights)[safe]
  return np.where(valid, loss, 0.0), valid


def test_class_weights_and_top_k_match_numpy_per_image():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(2, 6, 5, 3)).astype(np.float32)
  labels = rng.integers(0, 3, size=(2, 6, 5))
  labels[1, :3] = 255
  weights = (0.5, 2.0, 1.0)
  per_pixel, valid = numpy_per_pixel(logits, labels, 255, weights)
  weighted = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), 255, weights)
  np.testing.assert_allclose(weighted, per_pixel.sum() / valid.sum(), rtol=1e-5)

  kept, total = [], 0
  for image, mask in zip(per_pixel, valid):
    k = int(np.ceil(0.25 * mask.sum()))
    kept.append(np.sort(image[mask])[::-1][:k].sum())
    total += k
  mined = losses.cross_entropy(jnp.asarray(logits), jnp.asarray(labels), 255, weights, top_k=0.25,
                                top_k_scope='image')
  np.testing.assert_allclose(mined, sum(kept) / total, rtol=1e-5)
  assert float(losses.num_loss_pixels(jnp.asarray(labels), 255, 0.25)) == total
  assert float(mined) > float(weighted)  # the hardest pixels have the largest losses


def test_hard_mining_ramps_from_all_pixels_to_top_k():
  np.testing.assert_allclose(losses.top_k_fraction(0, 25.0, 100), 1.0)
  np.testing.assert_allclose(losses.top_k_fraction(50, 25.0, 100), 0.625)
  np.testing.assert_allclose(losses.top_k_fraction(200, 25.0, 100), 0.25)
  np.testing.assert_allclose(losses.top_k_fraction(0, 25.0, 0), 0.25)
