"""The train state: step, parameters, optimizer state and BatchNorm statistics."""
import functools
from typing import Any

import flax.linen as nn
from flax.training import train_state
import jax
import jax.numpy as jnp
import ml_collections
import optax

from deeplab_jax.models import init
from deeplab_jax.models.deeplab import SHAPE_INFERENCE_SIZE, build_model
from deeplab_jax.train import optimizer


class TrainState(train_state.TrainState):
  batch_stats: Any = None

  def variables(self) -> dict:
    """The model variables for `apply`."""
    return {'params': self.params, 'batch_stats': self.batch_stats}


def create_train_state(rng: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       image_size: int = SHAPE_INFERENCE_SIZE, init_scheme: str = 'deeplab') -> TrainState:
  """A fresh state; variables are initialised on a [1, S, S, 3] batch (their shapes don't depend on S),
  then redrawn as models.init's `init_scheme` says."""
  variables = model.init(rng, jnp.zeros((1, image_size, image_size, 3), jnp.float32))
  params = init.reinitialize(variables['params'], init_scheme, jax.random.fold_in(rng, 1))
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx,
                            batch_stats=variables.get('batch_stats', {}))  # {}: no BatchNorm (VGG)
  # A strong int32 step, as a restored one is: a resumed run then compiles the same train step (and
  # finds it in a persistent compilation cache) instead of one for a weakly typed step.
  return state.replace(step=jnp.zeros((), jnp.int32))


def init_state(config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding,
               rng: jax.Array) -> TrainState:
  """A fresh train state of the config's training model, placed with `sharding` (e.g. replicated)."""
  return jax.jit(_make_state(config), out_shardings=sharding,
                 compiler_options=init_compiler_options())(rng)


def abstract_state(config: ml_collections.ConfigDict, sharding: jax.sharding.Sharding,
                   rng: jax.Array) -> TrainState:
  """init_state's structure, shapes, dtypes and placement, computing nothing (no init program is
  compiled): what restoring a checkpoint needs."""
  shapes = jax.eval_shape(_make_state(config), rng)
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def _make_state(config: ml_collections.ConfigDict):
  """rng -> a fresh train state of config's training model."""
  model = build_model(config, train=True)
  tx = optimizer.create_optimizer(config.train)
  return functools.partial(create_train_state, model=model, tx=tx, init_scheme=config.model.init_scheme)


def init_compiler_options() -> dict:
  """XLA:CPU compiles the init program (a forward pass whose outputs are dropped, and the
  initialisers) 2-3x faster without LLVM's optimisations, and it runs once: they are off for it."""
  return {'xla_backend_optimization_level': 0} if jax.default_backend() == 'cpu' else {}
