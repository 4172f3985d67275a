"""SGD with momentum, the poly learning-rate schedule (after an optional warmup) and L2 weight decay."""
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax


def poly_schedule(train_cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """base_lr * (1 - step / num_steps) ** lr_power, as every DeepLab paper trains, after a linear warmup
  of train_cfg.warmup_steps (if any) from 0 to base_lr."""
  poly = optax.polynomial_schedule(train_cfg.base_lr, 0.0, train_cfg.lr_power, train_cfg.num_steps)
  warmup = train_cfg.warmup_steps
  if not warmup:
    return poly
  ramp = optax.linear_schedule(0.0, train_cfg.base_lr, warmup)
  # The poly part keeps counting from step 0, so the run still ends at LR 0 on num_steps.
  return lambda step: jnp.where(step < warmup, ramp(step), poly(step))


def _path_name(path) -> str:
  return '/'.join(str(getattr(k, 'key', k)) for k in path)


def kernel_mask(params):
  """True for conv kernels, False for BatchNorm scales/offsets and biases (DeepLab decays weights only)."""
  return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == 'kernel', params)


def prefix_mask(params, prefixes: Sequence[str]):
  """True for the parameters whose path ('head/logits/kernel') starts with one of prefixes."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: any(_path_name(path).startswith(p) for p in prefixes), params)


def create_optimizer(train_cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Weight decay (the gradient of weight_decay / 2 * |w|^2) then SGD with momentum on the schedule.

  The last layers' updates are scaled by last_layer_lr_multiplier (DeepLab's last_layer_gradient_
  multiplier: scaling before or after momentum is the same, both are linear).
  """
  parts = [optax.add_decayed_weights(train_cfg.weight_decay, mask=kernel_mask),
           optax.sgd(poly_schedule(train_cfg), momentum=train_cfg.momentum)]
  multiplier = train_cfg.last_layer_lr_multiplier
  if multiplier != 1.0:
    prefixes = tuple(train_cfg.last_layers)
    parts.append(optax.masked(optax.scale(multiplier), lambda p: prefix_mask(p, prefixes)))
  return optax.chain(*parts)
