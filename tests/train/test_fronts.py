"""The jit and pmap fronts and one device give the same update; checkpoints move between them."""
import jax
import jax.numpy as jnp
import numpy as np

from deeplab_jax import sharding
from deeplab_jax.checkpoint import Checkpointer
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.train import loop
from tests.train.helpers import assert_trees_close, fixed_config, random_batches, run_steps

# fp32 sums over 8 shards and over one device run in different orders. jit and pmap on 8 devices: worst
# gap after 3 steps ~1e-9 absolute. One device against 8: ~2e-6 relative with the library convs; with
# CPU's 1x1-as-matmul and atrous-as-per-tap-matmul lowerings, whose kernel gradients contract over
# batch x pixels in one dot on one device and in 8 partial dots plus a sum on 8, up to 5e-5 relative
# (the stem kernel, 2026-12-01).
RTOL, ATOL = 1e-5, 1e-6
ONE_DEVICE_RTOL, ONE_DEVICE_ATOL = 1e-4, 1e-5


def test_jit_pmap_and_one_device_agree_and_checkpoints_move_between_them(tmp_path):
  config, batches = fixed_config(), random_batches(4)
  jit8, jit_metrics = run_steps(config, batches[:3])
  one, _ = run_steps(config, batches[:3], jax.devices()[:1])
  config.parallelism = 'pmap'
  pmap8, pmap_metrics = run_steps(config, batches[:3])
  for other, rtol, atol in ((one, ONE_DEVICE_RTOL, ONE_DEVICE_ATOL), (pmap8, RTOL, ATOL)):
    assert_trees_close(jit8.params, other.params, rtol, atol)
    assert_trees_close(jit8.batch_stats, other.batch_stats, rtol, atol)
  np.testing.assert_allclose([m['loss'] for m in jit_metrics], [m['loss'] for m in pmap_metrics],
                             rtol=RTOL)
  assert int(pmap8.step) == int(jit8.step) == 3
  fresh = loop.init_state(config, sharding.make_mesh(jax.devices()[:1]), jax.random.key(0))
  assert not np.allclose(jax.tree.leaves(fresh.params)[0], jax.tree.leaves(jit8.params)[0])

  # Saved under pmap on 8 devices, restored under jit on 1: the same values, and training continues.
  checkpointer = Checkpointer(str(tmp_path / 'checkpoints'))
  checkpointer.save(3, pmap8)
  checkpointer.close()
  restored = Checkpointer(str(tmp_path / 'checkpoints')).restore(3, fresh)
  contents = lambda s: jax.device_get((s.step, s.params, s.batch_stats, s.opt_state))  # noqa: E731
  jax.tree.map(np.testing.assert_array_equal, contents(restored), contents(pmap8))
  assert restored.params['head']['logits']['kernel'].sharding.device_set == {jax.devices()[0]}
  config.parallelism = 'jit'
  continued_one, _ = run_steps(config, batches[3:], jax.devices()[:1], state=restored)
  continued_jit8, _ = run_steps(config, batches[3:], state=jit8)
  assert int(continued_one.step) == 4
  assert_trees_close(continued_one.params, continued_jit8.params, ONE_DEVICE_RTOL, ONE_DEVICE_ATOL)


def test_bfloat16_keeps_float32_state_and_trains():
  config = fixed_config()
  config.model.dtype = 'bfloat16'
  batch = random_batches(1)[0]
  batch['label'] = np.where(batch['image'][..., 0] > 0, 1, 2).astype(np.int32)  # learnable from pixels
  state, history = run_steps(config, [batch] * 6)
  for leaf in jax.tree.leaves((state.params, state.batch_stats, state.opt_state)):
    assert leaf.dtype in (jnp.float32, jnp.int32), leaf.dtype
  assert all(m['loss'].dtype == np.float32 for m in history)
  assert history[-1]['loss'] < 0.9 * history[0]['loss']  # learns the batch
  model = build_model(config, train=False)
  logits = model.apply(state.variables(), jnp.asarray(batch['image'][:1]))['logits']
  assert logits.dtype == jnp.float32


def test_four_micro_batches_equal_one_big_batch_with_frozen_batch_norm():
  config = fixed_config()
  config.model.fine_tune_batch_norm = False
  config.train.class_weights = (1.0, 2.0, 0.5, 1.0, 3.0, 1.0)
  config.train.top_k_percent = 40.0  # per-image hard mining: independent of how the batch is split
  config.train.top_k_scope = 'image'
  batches = random_batches(2)
  devices = jax.devices()[:2]
  whole, _ = run_steps(config, batches, devices)
  config.train.grad_accum_steps = 4
  accumulated, _ = run_steps(config, batches, devices)
  assert_trees_close(whole.params, accumulated.params, RTOL, ATOL)
  jax.tree.map(np.testing.assert_array_equal, whole.batch_stats, accumulated.batch_stats)  # frozen
  # Not vacuous: with BatchNorm training, each micro-batch normalises by its own statistics.
  config.model.fine_tune_batch_norm = True
  live, _ = run_steps(config, batches, devices)
  kernel = lambda state: state.params['head']['logits']['kernel']  # noqa: E731
  assert not np.allclose(kernel(live), kernel(accumulated), rtol=RTOL, atol=ATOL)
