"""Shared pieces of the train tests: fixed random batches and a few steps through a front."""
import jax
import numpy as np

from deeplab_jax import sharding
from deeplab_jax.train import loop
from tests.conftest import tiny_config


def fixed_config():
  """tiny_config without dropout (its masks are drawn per device under pmap) and a lively LR."""
  config = tiny_config()
  config.model.dropout_rate = 0.0
  config.train.base_lr = 0.05
  config.data.num_classes = 6
  config.data.crop_size = 32
  config.model.resnet.blocks = (1, 1, 1, 1)  # the smallest ResNet: compilation dominates test time
  config.model.multi_grid = ()
  return config


def random_batches(n, batch_size=8, size=32, seed=0):
  rng = np.random.default_rng(seed)
  return [{'image': rng.normal(size=(batch_size, size, size, 3)).astype(np.float32),
           'label': np.where(rng.random((batch_size, size, size)) < 0.1, 255,
                             rng.integers(0, 6, size=(batch_size, size, size))).astype(np.int32)}
          for _ in range(n)]


def run_steps(config, batches, devices=None, state=None):
  """Trains on batches with config.parallelism's front over devices; returns (global state, metrics)."""
  mesh = sharding.make_mesh(devices or jax.devices())
  if state is None:
    state = loop.init_state(config, mesh, jax.random.key(0))
  front = loop.make_front(config, mesh)
  device_state, history = front.put_state(state), []
  for batch in batches:
    device_state, step_metrics = front.step(device_state, front.put_batch(batch), jax.random.key(1))
    history.append(jax.device_get(front.metrics(step_metrics)))
  return front.get_state(device_state), history


def assert_trees_close(a, b, rtol, atol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol,
                                                        atol=atol), jax.device_get(a), jax.device_get(b))
