"""The sharded train step: BatchNorm statistics and gradients over the global batch."""
import jax
import numpy as np

from deeplab_jax import sharding
from deeplab_jax.train import loop, optimizer, steps
from tests.conftest import tiny_config


def run_one_step(devices, batch, config):
  mesh = sharding.make_mesh(devices)
  state = loop.init_state(config, mesh, jax.random.key(0))
  step = steps.jit_train_step(mesh, steps.step_options(config, optimizer.poly_schedule(config.train)))
  new_state, step_metrics = step(state, sharding.global_batch(batch, mesh), jax.random.key(1))
  return jax.device_get((new_state.params, new_state.batch_stats, step_metrics))


def test_eight_devices_match_one_device_on_the_global_batch():
  assert jax.device_count() == 8
  config = tiny_config()
  config.model.dropout_rate = 0.0
  rng = np.random.default_rng(0)
  batch = {'image': rng.normal(size=(8, 48, 48, 3)).astype(np.float32),
           'label': rng.integers(0, 6, size=(8, 48, 48)).astype(np.int32)}
  params8, stats8, metrics8 = run_one_step(jax.devices(), batch, config)
  params1, stats1, metrics1 = run_one_step(jax.devices()[:1], batch, config)
  np.testing.assert_allclose(metrics8['loss'], metrics1['loss'], rtol=1e-5)
  np.testing.assert_allclose(metrics8['grad_norm'], metrics1['grad_norm'], rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), stats8, stats1)
  # Parameters moved by lr * grad; float summation order differs across devices by ~1e-6.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5), params8, params1)

  # The statistics of one device's share of the batch differ: the match above is not vacuous.
  _, stats_part, _ = run_one_step(jax.devices()[:1], {k: v[:1] for k, v in batch.items()}, config)
  first = lambda tree: jax.tree.leaves(tree)[0]  # noqa: E731
  assert not np.allclose(first(stats_part), first(stats1), rtol=1e-3)


def test_weight_decay_only_on_kernels():
  config = tiny_config()
  params = loop.init_state(config, sharding.make_mesh(jax.devices()[:1]), jax.random.key(0)).params
  mask = optimizer.kernel_mask(params)
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  assert all(v == (path[-1].key == 'kernel') for path, v in flat)
  assert any(v for _, v in flat) and not all(v for _, v in flat)


def test_poly_schedule():
  config = tiny_config()
  config.train.base_lr, config.train.num_steps = 0.01, 100
  schedule = optimizer.poly_schedule(config.train)
  np.testing.assert_allclose(schedule(0), 0.01)
  np.testing.assert_allclose(schedule(50), 0.01 * 0.5 ** 0.9, rtol=1e-6)
  np.testing.assert_allclose(schedule(100), 0.0, atol=1e-9)


def test_warmup_then_poly():
  config = tiny_config()
  config.train.base_lr, config.train.num_steps, config.train.warmup_steps = 0.01, 100, 10
  schedule = optimizer.poly_schedule(config.train)
  np.testing.assert_allclose(schedule(0), 0.0, atol=1e-9)
  np.testing.assert_allclose(schedule(5), 0.005, rtol=1e-6)
  np.testing.assert_allclose(schedule(50), 0.01 * 0.5 ** 0.9, rtol=1e-6)


def test_last_layer_lr_multiplier_scales_only_the_last_layer():
  config = tiny_config()
  config.train.weight_decay, config.train.momentum = 0.0, 0.0
  ones = np.ones(2, np.float32)
  params = {'head': {'logits': {'kernel': ones}, 'aspp': {'kernel': ones}}}
  grads = jax.tree.map(np.ones_like, params)
  plain = optimizer.create_optimizer(config.train)
  config.train.last_layer_lr_multiplier = 10.0
  boosted = optimizer.create_optimizer(config.train)
  u_plain, _ = plain.update(grads, plain.init(params), params)
  u_boost, _ = boosted.update(grads, boosted.init(params), params)
  np.testing.assert_allclose(u_boost['head']['logits']['kernel'], 10 * u_plain['head']['logits']['kernel'])
  np.testing.assert_allclose(u_boost['head']['aspp']['kernel'], u_plain['head']['aspp']['kernel'])


def test_loss_on_the_logit_grid_uses_labels_subsampled_by_the_stride():
  """train.upsample_logits=False (v1/v2's label_shrink): at a 33 px crop and output stride 8 the loss is
  the cross-entropy of the 5x5 logits against labels[:, ::8, ::8], written out here in numpy."""
  config = tiny_config()
  config.model.dropout_rate, config.model.output_stride, config.model.multi_grid = 0.0, 8, ()
  config.train.upsample_logits = False
  config.data.crop_size = 33
  rng = np.random.default_rng(0)
  batch = {'image': rng.normal(size=(2, 33, 33, 3)).astype(np.float32),
           'label': rng.integers(0, 6, size=(2, 33, 33)).astype(np.int32)}
  batch['label'][0, :8] = config.data.ignore_label  # ignored rows 0 and 1 of the 5x5 grid of image 0
  mesh = sharding.make_mesh(jax.devices()[:1])
  state = loop.init_state(config, mesh, jax.random.key(0))
  outputs, _ = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats}, batch['image'],
                              mutable=['batch_stats'], rngs={'dropout': jax.random.key(1)})
  logits = np.asarray(outputs['logits'], np.float64)
  assert logits.shape == (2, 5, 5, 6)
  labels = batch['label'][:, ::8, ::8]
  log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  def cross_entropy(labels):
    valid = labels != config.data.ignore_label
    return -np.take_along_axis(log_probs, np.where(valid, labels, 0)[..., None], -1)[..., 0][valid].mean()

  _, _, step_metrics = run_one_step(jax.devices()[:1], batch, config)
  # The jitted step runs its own forward pass (other fusions, BatchNorm over 50 positions): float32
  # rounding moves the loss by ~1e-5 relative. Labels taken by a half-pixel nearest resize (rows and
  # columns 3, 9, 16, 23, 29) instead of the corner-aligned grid move it by > 10x that.
  np.testing.assert_allclose(step_metrics['loss'], cross_entropy(labels), rtol=1e-4)
  half_pixel = ((np.arange(5) + 0.5) * 33 / 5).astype(int)
  shifted = batch['label'][:, half_pixel][:, :, half_pixel]
  assert abs(cross_entropy(shifted) - cross_entropy(labels)) > 10 * 1e-4 * cross_entropy(labels)


def test_a_uint8_batch_is_normalised_on_the_device_as_the_pipeline_would():
  config = tiny_config()
  config.model.dropout_rate = 0.0
  mean, std = np.float32([120.0, 110.0, 100.0]), np.float32([60.0, 55.0, 50.0])
  config.data.mean, config.data.std = tuple(mean), tuple(std)
  rng = np.random.default_rng(3)
  raw = {'image': rng.integers(0, 256, size=(2, 48, 48, 3)).astype(np.uint8),
         'label': rng.integers(0, 6, size=(2, 48, 48)).astype(np.uint8)}
  normalised = {'image': (raw['image'].astype(np.float32) - mean) / std,
                'label': raw['label'].astype(np.int32)}
  params_raw, stats_raw, metrics_raw = run_one_step(jax.devices()[:1], raw, config)
  params, stats, step_metrics = run_one_step(jax.devices()[:1], normalised, config)
  np.testing.assert_allclose(metrics_raw['loss'], step_metrics['loss'], rtol=1e-6)
  options = steps.step_options(config, optimizer.poly_schedule(config.train))
  on_device = jax.device_get(jax.jit(lambda b: steps.device_batch(b, options))(raw))
  assert on_device['label'].dtype == np.int32
  np.testing.assert_array_equal(on_device['label'], normalised['label'])
  np.testing.assert_allclose(on_device['image'], normalised['image'], rtol=0, atol=1e-6)
  # numpy's (x - mean) / std and XLA's differ in the last bit, which one step's BatchNorm statistics
  # amplify to ~3e-4 of their largest magnitude: each leaf is held to 1e-3 of it.
  def close(a, b):
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * np.abs(b).max())
  jax.tree.map(close, stats_raw, stats)
  # As between devices above: the same parameters up to float summation order.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5), params_raw, params)
  # Unnormalised pixels would give other BatchNorm statistics: the match above is not vacuous.
  unnormalised = dict(normalised, image=raw['image'].astype(np.float32))
  _, stats_wrong, _ = run_one_step(jax.devices()[:1], unnormalised, config)
  first = lambda tree: jax.tree.leaves(tree)[0]  # noqa: E731
  assert np.abs(first(stats_wrong) - first(stats)).max() > 1e-2 * np.abs(first(stats)).max()
