"""Tests for deeplab_jax.ops.crf against numpy references and pydensecrf2."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from deeplab_jax.ops import crf


def _scene(height, width, classes, seed=0, colour_noise=4., label_noise=0.3):
  """An image of a few coloured shapes plus noise, and logits from a noisy copy of its labels.

  Returns:
    logits [H, W, C] float32, image [H, W, 3] uint8, labels [H, W] int.
  """
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[:height, :width]
  labels = np.zeros((height, width), int)
  labels[(rows - 0.4 * height) ** 2 + (cols - 0.5 * width) ** 2 < (0.25 * height) ** 2] = 1
  labels[int(0.6 * height):int(0.9 * height), int(0.1 * width):int(0.6 * width)] = 2
  labels[:int(0.2 * height), int(0.7 * width):] = 3 % classes
  palette = rng.uniform(20, 235, (classes, 3))
  image = palette[labels] + rng.normal(0, colour_noise, (height, width, 3))
  image = np.clip(image, 0, 255).round().astype(np.uint8)
  noisy = np.where(rng.random((height, width)) < label_noise,
                   rng.integers(0, classes, (height, width)), labels)
  logits = rng.normal(0, 1., (height, width, classes)) + 2. * np.eye(classes)[noisy]
  return logits.astype(np.float32), image, labels


def _numpy_mean_field(logits, image, params, normalization='symmetric'):
  """densecrf's inference with explicit kernels, in float64 numpy: [H, W, C] -> [N, C].

  normalization 'symmetric' (pydensecrf): kernels D^-1/2 K D^-1/2; 'per_pixel' (the 2011 densecrf's
  PottsPotential with per_pixel_normalization): D^-1 K, each message w * (K Q)_i / (K 1)_i.
  """
  height, width, classes = logits.shape
  rows, cols = np.mgrid[:height, :width]
  pos = np.stack([cols.ravel(), rows.ravel()], -1).astype(np.float64)
  rgb = image.reshape(-1, 3).astype(np.float64)
  kernels = []
  for weight, feats in [(params.w1, np.hstack([pos / params.theta_alpha, rgb / params.theta_beta])),
                        (params.w2, pos / params.theta_gamma)]:
    k = np.exp(-0.5 * ((feats[:, None] - feats[None]) ** 2).sum(-1))  # self term included
    if normalization == 'per_pixel':
      kernels.append(weight * k / k.sum(1, keepdims=True))
    else:
      norm = 1. / np.sqrt(k.sum(1))
      kernels.append(weight * norm[:, None] * k * norm[None, :])
  prob = np.exp(logits - logits.max(-1, keepdims=True)).reshape(-1, classes)
  prob /= prob.sum(-1, keepdims=True)
  unary = -np.log(np.clip(prob, 1e-5, 1.))

  def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

  q = softmax(-unary)
  for _ in range(params.iterations):
    q = softmax(-unary + sum(k @ q for k in kernels))  # Potts: compat -w, subtracted
  return q


def _hash_table_lattice_filter(features, values):
  """densecrf's permutohedral filter with a Python dict as its hash table: [N, C] -> [N, C]."""
  n, d = features.shape
  rem0, rank, weight = crf._enclosing_simplex(crf._elevate(jnp.asarray(features)))
  keys = np.asarray(crf._vertex_keys(rem0, rank)).reshape(d, -1).T  # entry r * N + n
  table = {}
  ids = np.array([table.setdefault(tuple(k), len(table)) for k in keys])
  weight = np.asarray(weight).reshape(-1)
  grid = np.zeros((len(table) + 1, values.shape[1]))  # last row: absent neighbour
  np.add.at(grid, ids, weight[:, None] * np.tile(values, (d + 1, 1)))
  for j in range(d + 1):
    blurred = grid.copy()
    for i, key in enumerate(table):
      step = np.ones(d, int) - (d + 1) * (np.arange(d) == j)
      prev = table.get(tuple(np.array(key) - step), len(table))
      nxt = table.get(tuple(np.array(key) + step), len(table))
      blurred[i] = grid[i] + 0.5 * (grid[prev] + grid[nxt])
    grid = blurred
  sliced = (weight[:, None] * grid[ids]).reshape(d + 1, n, -1).sum(0)
  return sliced / (1. + 2. ** -d)


def test_exact_path_matches_numpy_mean_field():
  logits, image, _ = _scene(12, 10, 4)
  params = crf.CRFParams(method='exact', theta_alpha=5., theta_beta=20.)
  got = crf.dense_crf(jnp.asarray(logits)[None], jnp.asarray(image)[None], params)[0]
  want = _numpy_mean_field(logits, image, params)
  np.testing.assert_allclose(np.asarray(got).reshape(-1, 4), want, atol=2e-5)


@pytest.mark.parametrize('kind', ['gaussian', 'bilateral'])
def test_lattice_filter_matches_hash_table_reference(kind):
  _, image, _ = _scene(24, 20, 4, colour_noise=6.)
  features = (crf.gaussian_features(24, 20, 3.) if kind == 'gaussian'
              else crf.bilateral_features(jnp.asarray(image), 67., 3.))
  values = np.random.default_rng(1).random((24 * 20, 5)).astype(np.float32)
  want = _hash_table_lattice_filter(np.asarray(features), values)
  points = jax.jit(crf.splat_points)(features)
  for capacity in (int(points.num_points), points.keys.shape[1]):  # tight and worst-case
    lattice = jax.jit(crf.blur_structure, static_argnums=1)(points, capacity)
    got = jax.jit(crf.lattice_filter)(lattice, jnp.asarray(values))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5 * want.max())


def test_permutohedral_agrees_with_exact():
  logits, image, _ = _scene(48, 40, 5, colour_noise=6.)
  run = lambda method: np.asarray(crf.dense_crf(
      jnp.asarray(logits)[None], jnp.asarray(image)[None], crf.CRFParams(method=method))[0])
  fast, exact = run('permutohedral'), run('exact')
  agreement = np.mean(fast.argmax(-1) == exact.argmax(-1))
  max_diff = np.abs(fast - exact).max()
  print(f'permutohedral vs exact: labels {100 * agreement:.2f}%, max |dQ| {max_diff:.4f}')
  assert agreement >= 0.995


def test_agrees_with_pydensecrf():
  densecrf = pytest.importorskip('pydensecrf.densecrf')
  logits, image, _ = _scene(64, 56, 6)
  params = crf.CRFParams()
  prob = np.exp(logits - logits.max(-1, keepdims=True))
  prob /= prob.sum(-1, keepdims=True)
  model = densecrf.DenseCRF2D(56, 64, 6)
  unary = -np.log(np.clip(prob, 1e-5, 1.)).transpose(2, 0, 1).reshape(6, -1)
  model.setUnaryEnergy(np.ascontiguousarray(unary, np.float32))
  model.addPairwiseGaussian(sxy=params.theta_gamma, compat=params.w2)
  model.addPairwiseBilateral(sxy=params.theta_alpha, srgb=params.theta_beta,
                             rgbim=np.ascontiguousarray(image), compat=params.w1)
  want = np.array(model.inference(params.iterations)).reshape(6, 64, 56).transpose(1, 2, 0)
  got = np.asarray(crf.dense_crf(jnp.asarray(logits)[None], jnp.asarray(image)[None], params)[0])
  assert np.mean(got.argmax(-1) == want.argmax(-1)) >= 0.99
  np.testing.assert_allclose(got, want, atol=1e-3)


def test_jit_batch_equals_per_image():
  scenes = [_scene(20, 16, 3, seed=s) for s in (0, 1)]
  logits = jnp.asarray(np.stack([s[0] for s in scenes]))
  images = jnp.asarray(np.stack([s[1] for s in scenes]))
  batched = jax.jit(crf.dense_crf, static_argnums=2)(logits, images, crf.CRFParams())
  single_fn = jax.jit(crf.dense_crf_single, static_argnums=2)
  for i in range(2):
    single = single_fn(logits[i], images[i], crf.CRFParams())
    np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), atol=1e-5)
  assert batched.shape == (2, 20, 16, 3)
  np.testing.assert_allclose(np.asarray(batched.sum(-1)), 1., atol=1e-5)


@pytest.mark.parametrize('method', crf.METHODS)
def test_gradient_matches_finite_differences(method):
  logits, image, _ = _scene(8, 6, 3, label_noise=0.5)
  params = crf.CRFParams(method=method, iterations=3)
  direction = np.random.default_rng(2).normal(size=logits.shape).astype(np.float32)
  target = np.random.default_rng(3).normal(size=logits.shape).astype(np.float32)
  loss = jax.jit(lambda x: jnp.sum(target * crf.dense_crf_single(x, jnp.asarray(image), params)))
  grad = jax.jit(jax.grad(loss))(jnp.asarray(logits))
  assert np.all(np.isfinite(np.asarray(grad)))
  eps = 1e-2
  numeric = (loss(logits + eps * direction) - loss(logits - eps * direction)) / (2 * eps)
  np.testing.assert_allclose(float(jnp.sum(grad * direction)), float(numeric), rtol=2e-2, atol=1e-3)


def test_from_config_reads_the_crf_block():
  cfg = ml_collections.ConfigDict(dict(enabled=True, w1=5., theta_alpha=80., theta_beta=4.,
                                       w2=3., theta_gamma=3., iterations=5, method='exact'))
  assert crf.from_config(cfg) == crf.CRFParams(5., 80., 4., 3., 3., 5, 'exact')
  with pytest.raises(ValueError, match='method'):
    crf.CRFParams(method='mean-shift')


def test_base_config_crf_block_is_off_with_spec_defaults():
  from configs import base
  block = base.get_config().crf
  assert not block.enabled
  assert crf.from_config(block) == crf.CRFParams()


def test_padding_masked_out_matches_the_unpadded_image():
  # Exact kernels: masking must reproduce the unpadded image (the permutohedral path runs masked in
  # tests/evaluate/test_crf_eval.py, where the CRF must still raise mIoU).
  logits, image, _ = _scene(24, 20, 4, seed=4)
  params = crf.CRFParams(method='exact')
  # Bottom/right padding in a colour close to the scene's, which would pull the border if it took part.
  padded_logits = np.pad(logits, ((0, 9), (0, 7), (0, 0)))
  padded_image = np.pad(image, ((0, 9), (0, 7), (0, 0)), constant_values=int(image.mean()))
  valid = np.zeros(padded_logits.shape[:2], bool)
  valid[:24, :20] = True
  run = jax.jit(crf.dense_crf, static_argnums=2)
  want = np.asarray(run(logits[None], image[None], params))[0]
  got = np.asarray(run(padded_logits[None], padded_image[None], params, valid[None]))[0]
  np.testing.assert_allclose(got[:24, :20], want, atol=1e-4)  # float32 sums in another order
  unmasked = np.asarray(run(padded_logits[None], padded_image[None], params))[0]
  assert np.abs(unmasked[:24, :20] - want).max() > 1e-2  # the padding would have mattered
  np.testing.assert_allclose(got[24:], 1. / 4, atol=1e-6)  # padding keeps softmax(0 logits)
