"""Checkpoint retention (latest N plus the best mIoU) and starting from another run's checkpoint."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax import sharding
from deeplab_jax.checkpoint import Checkpointer
from deeplab_jax.errors import UserError
from deeplab_jax.train import loop
from tests.train.helpers import fixed_config


def test_keeps_the_latest_two_and_the_best_miou(tmp_path):
  checkpointer = Checkpointer(str(tmp_path / 'c'), max_to_keep=2, keep_best=True)
  miou = {2: 0.7, 4: 0.5, 6: 0.6}
  for step in range(1, 8):
    metrics = {'miou': miou[step]} if step in miou else None
    checkpointer.save(step, {'w': jnp.full((2,), float(step))}, metrics=metrics)
  checkpointer.close()
  reopened = Checkpointer(str(tmp_path / 'c'), max_to_keep=2, keep_best=True)
  assert reopened.all_steps() == [2, 6, 7]
  assert reopened.latest_step() == 7
  restored = reopened.restore(2, {'w': jnp.zeros((2,))})
  np.testing.assert_array_equal(restored['w'], [2.0, 2.0])


def test_init_checkpoint_with_another_class_count_reinitialises_only_the_last_layer(tmp_path):
  mesh = sharding.make_mesh(jax.devices()[:1])
  source_config = fixed_config()
  source = loop.init_state(source_config, mesh, jax.random.key(7))
  checkpointer = Checkpointer(str(tmp_path / 'checkpoints'))
  checkpointer.save(100, source)
  checkpointer.close()

  config = fixed_config()
  config.data.num_classes = 4
  config.train.init_checkpoint = str(tmp_path / 'checkpoints')
  fresh = loop.init_state(config, mesh, jax.random.key(0))
  state = loop.initial_state(config, mesh, jax.random.key(0), log=lambda _: None)
  assert int(state.step) == 0
  logits = state.params['head']['logits']
  assert logits['kernel'].shape[-1] == 4
  np.testing.assert_array_equal(logits['kernel'], fresh.params['head']['logits']['kernel'])
  jax.tree.map(np.testing.assert_array_equal, state.params['backbone'], source.params['backbone'])
  jax.tree.map(np.testing.assert_array_equal, state.params['head']['aspp'], source.params['head']['aspp'])
  jax.tree.map(np.testing.assert_array_equal, state.batch_stats, source.batch_stats)

  config.train.reinit_head_on_mismatch = False
  with pytest.raises(UserError, match='head/logits'):
    loop.initial_state(config, mesh, jax.random.key(0), log=lambda _: None)
