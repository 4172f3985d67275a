"""Atrous convolution against a dense numpy convolution with the zero-inserted kernel, and its
space-to-batch implementation against the rhs_dilation one (outputs and gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.ops import atrous
from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv

# Every rate DeepLab uses; 33x33 and 65x65 are the ASPP inputs of a 513x513 image at OS 16 and OS 8.
RATES = [1, 2, 6, 12, 18, 24, 36]
SIZES = [(33, 33), (65, 65), (19, 30)]


def dilate(kernel: np.ndarray, rate: int) -> np.ndarray:
  """Insert rate - 1 zeros between the taps of kernel [k, k, ...]."""
  k = kernel.shape[0]
  out = np.zeros(((k - 1) * rate + 1,) * 2 + kernel.shape[2:], kernel.dtype)
  out[::rate, ::rate] = kernel
  return out


def dense_conv(x: np.ndarray, kernel: np.ndarray, depthwise: bool = False) -> np.ndarray:
  """Stride-1 'same' correlation of x [B, H, W, Cin] with an odd kernel [K, K, Cin|1, Cout], numpy."""
  size = kernel.shape[0]
  pad = size // 2
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  h, w = x.shape[1:3]
  out = 0
  for i in range(size):
    for j in range(size):
      tap = kernel[i, j]
      if not tap.any():
        continue
      window = xp[:, i:i + h, j:j + w, :]
      out = out + (window * tap[0] if depthwise else window @ tap)
  return out


@pytest.mark.parametrize('rate', [1, 2, 6, 12])
@pytest.mark.parametrize('size', [(17, 17), (24, 31), (513, 513)])
def test_atrous_conv_equals_dense_conv_with_zero_inserted_kernel(rate, size):
  rng = np.random.default_rng(rate)
  x = rng.normal(size=(1, *size, 3)).astype(np.float32)
  module = AtrousConv(features=4, kernel_size=3, rate=rate)
  variables = module.init(jax.random.key(0), jnp.asarray(x))
  y = np.asarray(module.apply(variables, jnp.asarray(x)))
  kernel = np.asarray(variables['params']['kernel'], np.float64)
  expected = dense_conv(x.astype(np.float64), dilate(kernel, rate))
  assert y.shape == (1, *size, 4)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('rate', [1, 2, 6, 12])
@pytest.mark.parametrize('size', [(19, 19), (30, 23)])
def test_depthwise_atrous_conv_equals_dense_reference(rate, size):
  rng = np.random.default_rng(10 + rate)
  x = rng.normal(size=(2, *size, 5)).astype(np.float32)
  module = AtrousDepthwiseConv(kernel_size=3, rate=rate)
  variables = module.init(jax.random.key(1), jnp.asarray(x))
  y = np.asarray(module.apply(variables, jnp.asarray(x)))
  kernel = np.asarray(variables['params']['kernel'], np.float64)  # [3, 3, 1, 5]
  expected = dense_conv(x.astype(np.float64), dilate(kernel, rate), depthwise=True)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_strided_conv_pads_like_pytorch():
  # PyTorch's Conv2d(k=3, stride=2, padding=1) on 8 pixels reads pixels -1..7; output i sees 2i-1..2i+1.
  x = np.arange(8, dtype=np.float32).reshape(1, 1, 8, 1)
  module = AtrousConv(features=1, kernel_size=3, stride=2)
  variables = {'params': {'kernel': jnp.ones((3, 3, 1, 1))}}
  y = np.asarray(module.apply(variables, jnp.asarray(x)))[0, 0, :, 0]
  expected = [sum(v for v in (2 * i - 1, 2 * i, 2 * i + 1) if 0 <= v < 8) for i in range(4)]
  np.testing.assert_allclose(y, expected)


def _all_impls(module_cls, x: np.ndarray, seed: int, **kwargs):
  """Outputs of module_cls(impl=...) for every impl (dilation first) with the same parameters, and those
  parameters."""
  x = jnp.asarray(x)
  variables = module_cls(**kwargs).init(jax.random.key(seed), x)
  outputs = [module_cls(impl=impl, **kwargs).apply(variables, x) for impl in atrous.IMPLS]
  return [np.asarray(y) for y in outputs], variables


@pytest.mark.parametrize('rate', RATES)
@pytest.mark.parametrize('size', SIZES)
def test_space_to_batch_equals_dilation(rate, size):
  x = np.random.default_rng(rate).normal(size=(2, *size, 3)).astype(np.float32)
  (dilated, *others), _ = _all_impls(AtrousConv, x, rate, features=4, kernel_size=3, rate=rate)
  assert dilated.shape == (2, *size, 4)
  for other in others:  # space_to_batch, taps
    np.testing.assert_allclose(other, dilated, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('rate', RATES)
@pytest.mark.parametrize('size', SIZES)
def test_depthwise_space_to_batch_equals_dilation(rate, size):
  x = np.random.default_rng(20 + rate).normal(size=(2, *size, 5)).astype(np.float32)
  (dilated, *others), _ = _all_impls(AtrousDepthwiseConv, x, rate, kernel_size=3, rate=rate,
                                      depth_multiplier=2)
  assert dilated.shape == (2, *size, 10)
  for other in others:
    np.testing.assert_allclose(other, dilated, rtol=1e-5, atol=1e-5)


def test_space_to_batch_equals_numpy_reference():
  # Independent of the dilation path: against the dense numpy conv with the zero-inserted kernel.
  x = np.random.default_rng(3).normal(size=(1, 23, 17, 3)).astype(np.float32)
  (_, *others), variables = _all_impls(AtrousConv, x, 3, features=4, kernel_size=3, rate=6)
  kernel = np.asarray(variables['params']['kernel'], np.float64)
  for other in others:
    np.testing.assert_allclose(other, dense_conv(x.astype(np.float64), dilate(kernel, 6)),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('kernel_size', [2, 4, 5])
@pytest.mark.parametrize('rate', [3, 7])
def test_space_to_batch_any_kernel_size(kernel_size, rate):
  # Even kernels pad asymmetrically (same_padding); the phase padding has to follow.
  rng = np.random.default_rng(kernel_size * 10 + rate)
  x = jnp.asarray(rng.normal(size=(1, 11, 14, 3)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(kernel_size, kernel_size, 3, 2)), jnp.float32)
  dilated = atrous.atrous_conv(x, kernel, rate)
  for impl in ('space_to_batch', 'taps'):
    got = atrous.atrous_conv(x, kernel, rate, impl=impl)
    np.testing.assert_allclose(np.asarray(got), np.asarray(dilated), rtol=1e-5, atol=1e-5)


def _grads(impl: str, x: jax.Array, kernel: jax.Array, weights: jax.Array, rate: int,
           depthwise: bool) -> tuple[jax.Array, jax.Array]:
  """d/d(x, kernel) of sum(conv(x, kernel) * weights)."""
  groups = x.shape[-1] if depthwise else 1

  def loss(x, kernel):
    y = atrous.atrous_conv(x, kernel, rate, feature_group_count=groups, impl=impl)
    # Random weights, not ones: a cotangent that differs per pixel catches a wrong phase interleave.
    return jnp.sum(y * weights)

  return jax.grad(loss, argnums=(0, 1))(x, kernel)


@pytest.mark.parametrize('depthwise', [False, True])
@pytest.mark.parametrize('rate', RATES)
def test_space_to_batch_gradients_equal_dilation(rate, depthwise):
  rng = np.random.default_rng(rate)
  channels, features = 4, 4 if depthwise else 3
  x = jnp.asarray(rng.normal(size=(1, 33, 27, channels)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 1 if depthwise else channels, features)), jnp.float32)
  weights = jnp.asarray(rng.normal(size=(1, 33, 27, features)), jnp.float32)
  dilated = _grads('dilation', x, kernel, weights, rate, depthwise)
  for impl in ('space_to_batch', 'taps'):
    for got, want in zip(_grads(impl, x, kernel, weights, rate, depthwise), dilated):
      np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)


def test_strided_convs_fall_back_to_the_plain_conv():
  x = np.random.default_rng(4).normal(size=(1, 15, 12, 3)).astype(np.float32)
  (dilated, *others), _ = _all_impls(AtrousConv, x, 4, features=2, kernel_size=3, rate=2, stride=2)
  assert dilated.shape == (1, 8, 6, 2)
  for other in others:  # space_to_batch and taps run the plain conv at stride 2
    np.testing.assert_array_equal(other, dilated)


def test_unknown_impl_is_a_clear_error():
  with pytest.raises(ValueError, match='space_to_batch'):
    atrous.atrous_conv(jnp.zeros((1, 5, 5, 1)), jnp.zeros((3, 3, 1, 1)), 2, impl='s2b')


def test_default_impl_per_platform():
  for platform in ('cpu', 'gpu', 'tpu'):
    for depthwise in (False, True):
      assert atrous.default_impl(platform, depthwise) in atrous.IMPLS
  # Platforms atrous_defaults.json does not list keep rhs_dilation.
  assert atrous.default_impl('tpu', False) == 'dilation'
  assert atrous.default_impl('gpu', True) == 'dilation'


def test_default_impl_reads_the_measured_table(tmp_path, monkeypatch):
  # The shipped table: each entry a measurement, with its date and command (benchmarks.atrous and
  # benchmarks.conv_ops write them).
  shipped = atrous.read_defaults()
  assert shipped['cpu']['regular'] in atrous.IMPLS and shipped['cpu']['depthwise'] in atrous.IMPLS
  assert shipped['cpu']['date'] and shipped['cpu']['measured'][0]['command']
  for kind, choices in atrous.LOWERINGS.items():
    assert shipped['cpu']['lowering'][kind] in choices
  assert shipped['cpu']['lowering']['command'].startswith('python -m deeplab_jax.benchmarks.conv_ops')
  path = tmp_path / 'defaults.json'
  path.write_text('{"cpu": {"regular": "dilation", "depthwise": "space_to_batch"}}')
  monkeypatch.setattr(atrous, 'DEFAULTS_PATH', str(path))
  assert atrous.default_impl('cpu', True) == 'space_to_batch'
  assert atrous.default_impl('CPU', False) == 'dilation'
  assert atrous.default_impl('gpu', True) == 'dilation'  # not listed
  path.write_text('{"cpu": {"depthwise": "s2b"}}')
  with pytest.raises(ValueError, match="depthwise='s2b'"):
    atrous.default_impl('cpu', True)
  monkeypatch.setattr(atrous, 'DEFAULTS_PATH', str(tmp_path / 'missing.json'))
  assert atrous.default_impl('cpu', True) == 'dilation'


def test_write_defaults_replaces_one_platform(tmp_path):
  path = str(tmp_path / 'defaults.json')
  atrous.write_defaults('gpu', {False: 'space_to_batch', True: 'dilation'}, {'date': 'd1'}, path)
  atrous.write_defaults('cpu', {False: 'dilation', True: 'dilation'}, {'date': 'd2'}, path)
  entry = atrous.write_defaults('GPU', {False: 'dilation', True: 'space_to_batch'}, {'date': 'd3'}, path)
  assert entry == {'regular': 'dilation', 'depthwise': 'space_to_batch', 'date': 'd3'}
  assert atrous.read_defaults(path) == {'gpu': entry, 'cpu': {'regular': 'dilation', 'depthwise': 'dilation',
                                                              'date': 'd2'}}
