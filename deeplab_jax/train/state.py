"""The train state: step, parameters, optimizer state and BatchNorm statistics."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state


class TrainState(train_state.TrainState):
  batch_stats: Any = None

  def variables(self) -> dict:
    """The model variables for `apply`."""
    return {'params': self.params, 'batch_stats': self.batch_stats}


def create_train_state(rng: jax.Array, model: nn.Module, tx: optax.GradientTransformation,
                       image_size: int) -> TrainState:
  """A fresh state; variables are initialised on a [1, S, S, 3] batch (their shapes don't depend on S)."""
  variables = model.init(rng, jnp.zeros((1, image_size, image_size, 3), jnp.float32))
  return TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                           batch_stats=variables.get('batch_stats', {}))  # {}: no BatchNorm (VGG)
