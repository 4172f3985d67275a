"""Model variables (params and BatchNorm statistics) from a training run's Orbax checkpoints.

Only `params` and `batch_stats` are read: the optimizer state is never materialised, so evaluating,
predicting or exporting needs the memory of the model alone.
"""
import os

import jax
import jax.numpy as jnp
import ml_collections
import orbax.checkpoint as ocp

from deeplab_jax.errors import UserError
from deeplab_jax.models.deeplab import build_model


def abstract_variables(config: ml_collections.ConfigDict, sharding=None) -> dict:
  """{'params', 'batch_stats'} of the config's model as ShapeDtypeStructs (nothing is computed)."""
  model = build_model(config.model, config.data.num_classes, train=False)
  size = config.data.crop_size
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.float32))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                      {'params': shapes['params'], 'batch_stats': shapes['batch_stats']})


def _choose_step(manager: ocp.CheckpointManager, directory: str, step: int) -> int:
  steps = sorted(manager.all_steps())
  if not steps:
    raise UserError(f'No checkpoint in {directory}. Train first (--mode=train with the same --workdir) '
                    'or pass the --workdir of a trained run.')
  if step and step not in steps:
    raise UserError(f'No checkpoint for step {step} in {directory}; it has steps {steps}. Set '
                    '--config.eval.step to one of them, or 0 for the latest.')
  return step or steps[-1]


def restore_variables(directory: str, config: ml_collections.ConfigDict, step: int = 0,
                      sharding=None) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) from the checkpoint at `step` (0: the latest) in directory.

  Raises:
    UserError: no checkpoints, no such step, or a checkpoint of a different model.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise UserError(f'Checkpoint folder {directory} does not exist. Train first (--mode=train with '
                    'the same --workdir) or pass the --workdir of a trained run.')
  abstract = abstract_variables(config, sharding)
  with ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=False)) as manager:
    step = _choose_step(manager, directory, step)
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
    try:
      restored = manager.restore(step, args=ocp.args.PyTreeRestore(
          item=abstract, restore_args=restore_args, partial_restore=True))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise UserError(f'Checkpoint {directory}/{step} does not match this config\'s model or is '
                      f'damaged ({type(e).__name__}: {str(e)[:300]}). Pass the config the run was '
                      'trained with (WORKDIR/config.json holds it).') from e
  return {'params': restored['params'], 'batch_stats': restored['batch_stats']}, step
