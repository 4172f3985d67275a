"""The train and eval steps, jitted over a device mesh with the batch on the 'data' axis.

Under `jit` the batch is one global array split over devices, so BatchNorm's mean and variance are taken
over the whole global batch and gradients are of the global loss: cross-device BatchNorm with no extra
code, as DeepLab needs (batch 16 with global statistics: 77.21 mIoU; batch 4: 64.43).
"""
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from deeplab_jax.evaluate import metrics
from deeplab_jax.train import losses
from deeplab_jax.train.state import TrainState

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over all (or the given) devices, axis 'data', with automatic (GSPMD) sharding."""
  devices = jax.devices() if devices is None else devices
  return jax.make_mesh((len(devices),), (DATA_AXIS,), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, ignore_label: int,
               learning_rate_fn: optax.Schedule, aux_loss_weight: float = 0.5) -> tuple[TrainState, dict]:
  """One SGD step on batch {'image': [B, H, W, 3], 'label': [B, H, W]}; returns (state, metrics)."""
  dropout_rng = jax.random.fold_in(rng, state.step)

  def loss_fn(params):
    outputs, updates = state.apply_fn({'params': params, 'batch_stats': state.batch_stats},
                                      batch['image'], mutable=['batch_stats'],
                                      rngs={'dropout': dropout_rng})
    loss, _ = losses.deeplab_loss(outputs, batch['label'], ignore_label, aux_loss_weight)
    return loss, updates

  (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  new_state = state.apply_gradients(grads=grads, batch_stats=updates.get('batch_stats', {}))
  return new_state, {'loss': loss, 'learning_rate': learning_rate_fn(state.step),
                     'grad_norm': optax.tree.norm(grads)}


def jit_train_step(mesh: Mesh, ignore_label: int, learning_rate_fn: optax.Schedule,
                   aux_loss_weight: float = 0.5) -> Callable:
  """train_step jitted over mesh: state replicated, batch split on 'data'; the old state is donated."""
  step = functools.partial(train_step, ignore_label=ignore_label, learning_rate_fn=learning_rate_fn,
                           aux_loss_weight=aux_loss_weight)
  return jax.jit(step, in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=0)


def eval_step(variables: dict, batch: dict, *, model: nn.Module, num_classes: int,
              ignore_label: int) -> jax.Array:
  """Confusion matrix [C, C] (rows: label, columns: prediction) of one batch."""
  logits = model.apply(variables, batch['image'])['logits']
  return metrics.confusion_matrix(batch['label'], jnp.argmax(logits, -1), num_classes, ignore_label)


def jit_eval_step(mesh: Mesh, model: nn.Module, num_classes: int, ignore_label: int) -> Callable:
  step = functools.partial(eval_step, model=model, num_classes=num_classes, ignore_label=ignore_label)
  return jax.jit(step, in_shardings=(replicated(mesh), batch_sharding(mesh)),
                 out_shardings=replicated(mesh))


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """Each process's local numpy batch -> one global array per key, split over the mesh."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local_batch.items()}
