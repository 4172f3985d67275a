"""Run state on disk: checkpoint retention (latest N plus the best mIoU), reading variables back by step
or folder, the workdir, starting from another run's checkpoint, and what saving and resuming compile."""
import contextlib
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax import checkpoint, sharding
from deeplab_jax.checkpoint import Checkpointer
from deeplab_jax.errors import UserError
from deeplab_jax.train import loop
from deeplab_jax.train import state as state_lib
from tests.train.helpers import fixed_config, random_batches


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


@contextlib.contextmanager
def counting_compiles():
  """A list that gets one entry per XLA compilation inside the block (jax's monitoring events; the
  suite's persistent cache is off there: each program is compiled, and counted, not loaded)."""
  compiles = []

  def listen(name, duration, **_):
    if name == '/jax/core/compile/backend_compile_duration':
      compiles.append(duration)

  cache = jax.config.jax_enable_compilation_cache
  jax.config.update('jax_enable_compilation_cache', False)
  jax.monitoring.register_event_duration_secs_listener(listen)
  try:
    yield compiles
  finally:
    jax.monitoring.unregister_event_duration_listener(listen)
    jax.config.update('jax_enable_compilation_cache', cache)


def avals(tree) -> list:
  return [(jax.tree_util.keystr(path), x.shape, x.dtype, getattr(x, 'weak_type', False), x.sharding)
          for path, x in jax.tree_util.tree_leaves_with_path(tree)]


def test_saving_and_resuming_on_eight_cpu_devices_compile_nothing_but_the_same_train_step(tmp_path):
  # orbax's replica-parallel saving compiled a slice program per array and replica: 208 for this
  # state. Restoring needs only the state's shapes: no init program. A fresh step was weakly typed,
  # so the resumed run compiled another train step.
  config, mesh, rng = fixed_config(), sharding.make_mesh(), jax.random.key(0)
  assert mesh.devices.size == 8
  fresh = loop.init_state(config, mesh, rng)
  with counting_compiles() as compiles:
    checkpointer = Checkpointer(str(tmp_path / 'checkpoints'))
    checkpointer.save(3, fresh)
    checkpointer.close()
    abstract = state_lib.abstract_state(config, sharding.replicated(mesh), rng)
    restored = Checkpointer(str(tmp_path / 'checkpoints')).restore_or_keep(abstract)
  assert len(compiles) == 0
  assert avals(abstract) == avals(fresh)
  assert avals(restored) == avals(fresh)
  jax.tree.map(np.testing.assert_array_equal, restored.params, fresh.params)

  front = loop.make_front(config, mesh)
  batch = {k: v.astype(np.uint8) for k, v in random_batches(1)[0].items()}
  lowered = [front.step.lower(state, front.put_batch(batch), rng).as_text() for state in (fresh, restored)]
  assert lowered[0] == lowered[1]


def saved_states(directory, steps):
  """Train states of fixed_config saved at `steps`, each with params filled by its step number."""
  config = fixed_config()
  state = loop.init_state(config, sharding.make_mesh(jax.devices()[:1]), jax.random.key(0))
  checkpointer = Checkpointer(str(directory))
  for step in steps:
    params = jax.tree.map(lambda x, s=step: jnp.full_like(x, float(s)), state.params)
    checkpointer.save(step, state.replace(step=step, params=params))
  checkpointer.close()
  return config


def test_read_variables_picks_the_step_and_reads_params_and_batch_stats_only(tmp_path):
  config = saved_states(tmp_path / 'checkpoints', (3, 5))
  for kwargs, want in (({}, 5), ({'step': 3}, 3), ({'config': config}, 5)):
    variables, step = checkpoint.read_variables(str(tmp_path / 'checkpoints'), **kwargs)
    assert step == want and sorted(variables) == ['batch_stats', 'params']
    leaves = jax.tree.leaves(variables['params'])
    assert all(np.all(np.asarray(x) == want) for x in leaves)
  variables, step = checkpoint.read_variables(str(tmp_path / 'checkpoints' / '3'))  # one step folder
  assert step == 3 and np.all(np.asarray(jax.tree.leaves(variables['params'])[0]) == 3)


def test_read_variables_errors_name_the_folder_and_the_steps(tmp_path):
  config = saved_states(tmp_path / 'checkpoints', (3,))
  with pytest.raises(UserError, match=r'No checkpoint for step 4 .* it has steps \[3\]'):
    checkpoint.read_variables(str(tmp_path / 'checkpoints'), step=4)
  with pytest.raises(UserError, match='does not exist'):
    checkpoint.read_variables(str(tmp_path / 'nowhere'))
  os.makedirs(tmp_path / 'empty')
  with pytest.raises(UserError, match='No checkpoint in'):
    checkpoint.read_variables(str(tmp_path / 'empty'))
  other = fixed_config()
  other.model.aspp_features = 8  # another model: shapes differ
  with pytest.raises(UserError, match='does not match'):
    checkpoint.read_variables(str(tmp_path / 'checkpoints'), config=other)
  del config


def test_prepare_workdir_writes_the_resolved_config(tmp_path):
  config = fixed_config()
  checkpoint.prepare_workdir(str(tmp_path / 'run'), config)
  with open(tmp_path / 'run' / 'config.json') as f:
    assert json.load(f)['data']['num_classes'] == config.data.num_classes
  (tmp_path / 'file').write_text('')
  with pytest.raises(UserError, match='Cannot write to workdir'):
    checkpoint.prepare_workdir(str(tmp_path / 'file' / 'run'), config)
