"""A tiny randomly initialised DeepLab shared by the evaluation tests (no training)."""
import jax
import numpy as np
import pytest

from deeplab_jax.models.deeplab import build_model
from tests.conftest import tiny_config


@pytest.fixture(scope='session')
def tiny_model():
  """(inference model at OS 16, its variables) with non-trivial BatchNorm statistics."""
  config = tiny_config()
  model = build_model(config, train=False)
  variables = jax.jit(model.init)(jax.random.key(0), np.zeros((1, 48, 48, 3), np.float32))
  # Random moving statistics and a tilted classifier: fresh ones would make every class almost equally
  # likely, and argmax comparisons would hinge on rounding.
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda x: np.asarray(x) + 0.3 * rng.normal(size=x.shape).astype(x.dtype),
                           variables)
  variables['batch_stats'] = jax.tree.map(np.abs, variables['batch_stats'])
  return model, variables


@pytest.fixture
def tiny(tiny_model):
  """(a fresh tiny_config() the test may change, model, variables)."""
  return (tiny_config(), *tiny_model)


def save_checkpoint(workdir: str, config, variables: dict, step: int) -> None:
  """WORKDIR/checkpoints/<step>: a whole train state (optimizer included), as training saves it."""
  import os

  from deeplab_jax.checkpoint import Checkpointer
  from deeplab_jax.train import optimizer
  from deeplab_jax.train.state import TrainState
  state = TrainState.create(apply_fn=None, params=variables['params'], batch_stats=variables['batch_stats'],
                            tx=optimizer.create_optimizer(config.train))
  checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints'))
  checkpointer.save(step, state)
  checkpointer.close()
