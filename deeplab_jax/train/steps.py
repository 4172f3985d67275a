"""The train and eval steps: one step function with two fronts, `jit` over a mesh and `pmap`.

Under `jit` the batch is one global array split over the mesh's 'data' axis, so BatchNorm's mean and
variance are over the whole global batch and gradients are of the global loss: cross-device BatchNorm
with no extra code, as DeepLab needs (batch 16 with global statistics: 77.21 mIoU; batch 4: 64.43).
Under `pmap` each device holds its slice and the same function reduces over the named pmap axis
(BatchNorm through the model's axis_name, gradients and loss through psum). Both give the update of one
device holding the whole batch.
"""
import dataclasses
import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import optax

from deeplab_jax import sharding
from deeplab_jax.data import normalization
from deeplab_jax.errors import UserError
from deeplab_jax.models import layers
from deeplab_jax.train import losses
from deeplab_jax.train.state import TrainState

PMAP_AXIS = 'batch'


@dataclasses.dataclass(frozen=True)
class StepOptions:
  """What a train step needs besides state and batch (static: part of the compiled function)."""
  ignore_label: int = 255
  learning_rate_fn: optax.Schedule = optax.constant_schedule(0.0)
  grad_accum_steps: int = 1  # micro-batches per step; their gradients are summed before one update
  class_weights: tuple[float, ...] | None = None
  top_k_percent: float = 100.0  # hard pixel mining: % of the pixels in the loss (top_k_scope)
  hard_mining_steps: int = 0  # steps over which the kept % ramps from 100 down to top_k_percent
  axis_name: str | None = None  # the pmap axis; None under jit
  aux_loss_weight: float = 0.5  # weight of the auxiliary head's loss, when the model has one
  upsample_logits: bool = True  # False: the model's logits stay on their grid; labels are subsampled to it
  top_k_scope: str = 'batch'  # 'batch': the official top-k over the flattened batch; or 'image'
  image_mean: tuple[float, ...] = (0.0, 0.0, 0.0)  # normalisation of uint8 batches, on the device
  image_std: tuple[float, ...] = (1.0, 1.0, 1.0)


def step_options(config: ml_collections.ConfigDict, learning_rate_fn: optax.Schedule) -> StepOptions:
  """The StepOptions of a config (axis_name stays None: the pmap front sets it)."""
  train = config.train
  mean, std = normalization.mean_std(config.data)
  weights = tuple(train.class_weights) or None
  if weights is not None and len(weights) != config.data.num_classes:
    raise UserError(f'train.class_weights has {len(weights)} values; data.num_classes is '
                    f'{config.data.num_classes}. Give one weight per class, or () for none.')
  if train.top_k_scope not in losses.TOP_K_SCOPES:
    raise UserError(f'train.top_k_scope={train.top_k_scope!r}; expected one of '
                    f'{", ".join(losses.TOP_K_SCOPES)}.')
  return StepOptions(config.data.ignore_label, learning_rate_fn, train.grad_accum_steps, weights,
                     train.top_k_percent, train.hard_mining_steps, None, train.aux_loss_weight,
                     upsample_logits=train.upsample_logits,
                     top_k_scope=train.top_k_scope, image_mean=mean, image_std=std)


def _psum(x, axis_name):
  return jax.lax.psum(x, axis_name) if axis_name else x


def _labels_on_logit_grid(state: TrainState, batch: dict, rng: jax.Array) -> jax.Array:
  """batch['label'] nearest-subsampled (corner-aligned) to the grid of the model's logits, which a
  model built with train.upsample_logits=False leaves unresized (the grid's size is traced, not run)."""
  def logits(variables, images):
    return state.apply_fn(variables, images, mutable=['batch_stats'], rngs={'dropout': rng})[0]['logits']
  variables = {'params': state.params, 'batch_stats': state.batch_stats}
  grid = jax.eval_shape(logits, variables, batch['image']).shape[1:3]
  return layers.resize_labels_nearest(batch['label'], grid)


def device_batch(batch: dict, options: StepOptions) -> dict:
  """A uint8 batch (as pipeline.train_batches(as_uint8=True) sends it) normalised here, on the device:
  float32 (image - mean) / std and int32 labels. A float batch passes unchanged."""
  if batch['image'].dtype != jnp.uint8:
    return batch
  image = (batch['image'].astype(jnp.float32) - jnp.asarray(options.image_mean, jnp.float32)) / (
      jnp.asarray(options.image_std, jnp.float32))
  return dict(batch, image=image, label=batch['label'].astype(jnp.int32))


def _micro_batches(batch: dict, n: int) -> dict:
  """[B, ...] -> [n, B / n, ...]; micro-batch i holds examples i, i + n, ... so that each device's
  share of the batch (contiguous under both fronts) splits evenly across micro-batches."""
  return jax.tree.map(lambda x: jnp.swapaxes(x.reshape(x.shape[0] // n, n, *x.shape[1:]), 0, 1), batch)


def train_step(state: TrainState, batch: dict, rng: jax.Array, *,
               options: StepOptions) -> tuple[TrainState, dict]:
  """One SGD step on batch {'image': [B, H, W, 3], 'label': [B, H, W]}; returns (state, metrics).

  A uint8 image batch is normalised first, by options.image_mean / image_std (device_batch).

  The batch is split into options.grad_accum_steps micro-batches run one after another (BatchNorm
  statistics too: they update once per micro-batch). Each part's mean loss is weighted by its pixel
  count over the total, so the summed gradient is that of the mean loss over the whole (global) batch.
  metrics['finite'] is False when the loss or a gradient is inf or NaN.
  """
  axis = options.axis_name
  batch = device_batch(batch, options)
  rng = jax.random.fold_in(rng, state.step)  # dropout depends on the step only: resumes are exact
  if axis:
    rng = jax.random.fold_in(rng, jax.lax.axis_index(axis))
  top_k = (losses.top_k_fraction(state.step, options.top_k_percent, options.hard_mining_steps)
           if options.top_k_percent < 100 else 1.0)
  if not options.upsample_logits:
    batch = dict(batch, label=_labels_on_logit_grid(state, batch, rng))
  micro = _micro_batches(batch, options.grad_accum_steps)
  # Official (batch-scope) mining ranks within each part it sees (micro-batch, pmap device), and the
  # parts' losses count equally, as the official code averages its clones' losses; otherwise each part
  # counts by its loss pixels, which makes the loss that of the whole batch.
  mine_parts = options.top_k_percent < 100 and options.top_k_scope == 'batch'

  def part_weight(labels):
    return 1.0 if mine_parts else losses.num_loss_pixels(labels, options.ignore_label, top_k)

  total = _psum(options.grad_accum_steps if mine_parts else part_weight(batch['label']), axis)

  def compute_loss(outputs, labels):
    loss, _ = losses.deeplab_loss(outputs, labels, options.ignore_label, options.aux_loss_weight,
                                  options.class_weights, top_k, options.top_k_scope)
    return loss

  def micro_loss(params, batch_stats, part, i):
    outputs, updates = state.apply_fn({'params': params, 'batch_stats': batch_stats}, part['image'],
                                      mutable=['batch_stats'], rngs={'dropout': jax.random.fold_in(rng, i)})
    weight = part_weight(part['label']) / jnp.maximum(total, 1)
    # A model without BatchNorm (VGG) has no batch_stats to update.
    return compute_loss(outputs, part['label']) * weight, updates.get('batch_stats', {})

  def accumulate(carry, part_and_index):
    grads, batch_stats, loss = carry
    (part_loss, batch_stats), part_grads = jax.value_and_grad(micro_loss, has_aux=True)(
        state.params, batch_stats, *part_and_index)
    return (jax.tree.map(jnp.add, grads, part_grads), batch_stats, loss + part_loss), None

  carry = (jax.tree.map(jnp.zeros_like, state.params), state.batch_stats, jnp.zeros((), jnp.float32))
  if options.grad_accum_steps == 1:
    # No loop for one micro-batch: inside a one-trip while loop XLA:CPU ran the quickstart step 5x
    # slower (0.68 s against 0.13 s per step, batch 16 at 96x96).
    (grads, batch_stats, loss), _ = accumulate(carry, (jax.tree.map(lambda x: x[0], micro), 0))
  else:
    (grads, batch_stats, loss), _ = jax.lax.scan(accumulate, carry,
                                                 (micro, jnp.arange(options.grad_accum_steps)))
  grads, loss = _psum((grads, loss), axis)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  grad_norm = optax.tree.norm(grads)
  return new_state, {'loss': loss, 'learning_rate': options.learning_rate_fn(state.step),
                     'grad_norm': grad_norm, 'finite': jnp.isfinite(loss) & jnp.isfinite(grad_norm)}


def check_batch_size(batch_size: int, grad_accum_steps: int, num_devices: int) -> None:
  if batch_size % (grad_accum_steps * num_devices):
    raise UserError(f'train.batch_size {batch_size} must be divisible by train.grad_accum_steps '
                    f'({grad_accum_steps}) times the number of devices ({num_devices}).')


def jit_train_step(mesh: Mesh, options: StepOptions) -> Callable:
  """train_step jitted over mesh: state replicated, batch split on 'data'; the old state is donated."""
  step = functools.partial(train_step, options=options)
  state, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(step, in_shardings=(state, batch, state), out_shardings=(state, state),
                 donate_argnums=0)


def pmap_train_step(options: StepOptions) -> Callable:
  """train_step pmapped over the local devices: state replicated (leading device axis), batch split."""
  step = functools.partial(train_step, options=dataclasses.replace(options, axis_name=PMAP_AXIS))
  return jax.pmap(step, axis_name=PMAP_AXIS, in_axes=(0, 0, None), donate_argnums=0)


class JitFront:
  """Runs train steps under jit; the state it holds is the global (replicated) state itself."""

  def __init__(self, mesh: Mesh, options: StepOptions, model: nn.Module | None = None):
    del model  # jit needs no axis-named model
    self.mesh = mesh
    self.step = jit_train_step(mesh, options)

  def put_state(self, state: TrainState) -> TrainState:
    return state

  def get_state(self, state: TrainState) -> TrainState:
    return state

  def put_batch(self, local_batch: dict) -> dict:
    return sharding.global_batch(local_batch, self.mesh)

  def metrics(self, step_metrics: dict) -> dict:
    return step_metrics


class PmapFront:
  """Runs train steps under pmap; converts states to and from the global form checkpoints hold.

  model must be the training model built with axis_name=PMAP_AXIS, so BatchNorm reduces over devices.
  """

  def __init__(self, mesh: Mesh, options: StepOptions, model: nn.Module):
    self.mesh, self.model = mesh, model
    self.devices = jax.local_devices()
    self.step = pmap_train_step(options)

  def put_state(self, state: TrainState) -> TrainState:
    state = state.replace(apply_fn=self.model.apply)
    n, host = len(self.devices), jax.device_get(state)
    split = NamedSharding(Mesh(np.array(self.devices), (PMAP_AXIS,)), P(PMAP_AXIS))
    return jax.tree.map(lambda x: jax.device_put(np.stack([x] * n), split), host)

  def get_state(self, state: TrainState) -> TrainState:
    """The first replica as a global array replicated over the mesh (the jit front's form)."""
    first = jax.tree.map(lambda x: np.asarray(x.addressable_shards[0].data)[0], state)
    everywhere = sharding.replicated(self.mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(everywhere, x, x.shape),
                        first)

  def put_batch(self, local_batch: dict) -> dict:
    n = len(self.devices)
    return {k: v.reshape(n, v.shape[0] // n, *v.shape[1:]) for k, v in local_batch.items()}

  def metrics(self, step_metrics: dict) -> dict:
    return jax.tree.map(lambda x: x[0], step_metrics)  # psum'd: equal on every device
