"""The train state: step, parameters, optimizer state and BatchNorm statistics."""
import functools
from typing import Any

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import optax

from deeplab_jax.models.deeplab import SHAPE_INFERENCE_SIZE, build_model
from deeplab_jax.train import optimizer


class TrainState(train_state.TrainState):
  batch_stats: Any = None

  def variables(self) -> dict:
    """The model variables for `apply`."""
    return {'params': self.params, 'batch_stats': self.batch_stats}


def create_train_state(rng: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       image_size: int = SHAPE_INFERENCE_SIZE) -> TrainState:
  """A fresh state; variables are initialised on a [1, S, S, 3] batch (their shapes don't depend on S)."""
  variables = model.init(rng, jnp.zeros((1, image_size, image_size, 3), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables.get('batch_stats', {}))  # {}: no BatchNorm (VGG)


def init_state(config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding,
               rng: jax.Array) -> TrainState:
  """A fresh train state of the config's training model, placed with `sharding` (e.g. replicated)."""
  model = build_model(config, train=True)
  tx = optimizer.create_optimizer(config.train)
  init = functools.partial(create_train_state, model=model, tx=tx)
  return jax.jit(init, out_shardings=sharding, compiler_options=init_compiler_options())(rng)


def init_compiler_options() -> dict:
  """XLA:CPU compiles the init program (a forward pass whose outputs are dropped, and the
  initialisers) 2-3x faster without LLVM's optimisations, and it runs once: they are off for it."""
  return {'xla_backend_optimization_level': 0} if jax.default_backend() == 'cpu' else {}
