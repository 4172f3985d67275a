"""The dense CRF's two kernel normalisations: pydensecrf's symmetric D^-1/2 K D^-1/2 and the per-pixel
D^-1 K of the 2011 densecrf that DeepLab v1/v2 ran, against numpy mean field and pydensecrf."""
import importlib

import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.ops import crf
from tests.ops.test_crf import _numpy_mean_field, _scene


def test_per_pixel_exact_matches_the_2011_densecrf_in_numpy():
  logits, image, _ = _scene(12, 10, 3, label_noise=0.5)
  params = crf.CRFParams(method='exact', theta_alpha=5., theta_beta=20., normalization='per_pixel')
  got = np.asarray(crf.dense_crf_single(jnp.asarray(logits), jnp.asarray(image), params)).reshape(-1, 3)
  want = _numpy_mean_field(logits, image, params, 'per_pixel')
  np.testing.assert_allclose(got, want, atol=1e-4)
  # The symmetric normalisation (the only one before) is measurably another CRF here.
  symmetric = crf.dense_crf_single(jnp.asarray(logits), jnp.asarray(image),
                                   crf.CRFParams(method='exact', theta_alpha=5., theta_beta=20.))
  assert np.abs(np.asarray(symmetric).reshape(-1, 3) - want).max() > 1e-2


def _pydensecrf(logits, image, params, normalization):
  densecrf = pytest.importorskip('pydensecrf.densecrf')
  height, width, classes = logits.shape
  prob = np.exp(logits - logits.max(-1, keepdims=True))
  prob /= prob.sum(-1, keepdims=True)
  model = densecrf.DenseCRF2D(width, height, classes)
  unary = -np.log(np.clip(prob, 1e-5, 1.)).transpose(2, 0, 1).reshape(classes, -1)
  model.setUnaryEnergy(np.ascontiguousarray(unary, np.float32))
  kind = getattr(densecrf, normalization)
  model.addPairwiseGaussian(sxy=params.theta_gamma, compat=params.w2, normalization=kind)
  model.addPairwiseBilateral(sxy=params.theta_alpha, srgb=params.theta_beta,
                             rgbim=np.ascontiguousarray(image), compat=params.w1, normalization=kind)
  return np.array(model.inference(params.iterations)).reshape(classes, -1).T


def test_the_per_pixel_reference_is_densecrfs_normalize_after():
  # densecrf 2.x's NORMALIZE_AFTER is the 2011 per-pixel normalisation; its permutohedral
  # approximation leaves ~1e-3 mean differences, several times smaller than with NORMALIZE_SYMMETRIC.
  logits, image, _ = _scene(12, 10, 3, label_noise=0.5)
  params = crf.CRFParams(method='exact', theta_alpha=5., theta_beta=20., normalization='per_pixel')
  want = _numpy_mean_field(logits, image, params, 'per_pixel')
  after = np.abs(_pydensecrf(logits, image, params, 'NORMALIZE_AFTER') - want).mean()
  symmetric = np.abs(_pydensecrf(logits, image, params, 'NORMALIZE_SYMMETRIC') - want).mean()
  assert after < 3e-3 and symmetric > 3 * after


def test_v1_v2_configs_use_deeplabs_normalisation_and_pydensecrf_parity_keeps_symmetric():
  for name in ('v1_voc', 'v2_voc'):
    block = importlib.import_module(f'configs.{name}').get_config().crf
    assert crf.from_config(block).normalization == 'per_pixel'
  assert crf.CRFParams().normalization == 'symmetric'  # tests/ops/test_crf.py's pydensecrf parity
  with pytest.raises(ValueError, match='normalization'):
    crf.CRFParams(normalization='mean')
