"""Orbax checkpoints of the train state: async saves, keep the newest N plus the best, resume.

Checkpoints hold the global, unreplicated state (what the jit front trains; the pmap front converts to
it), and are restored with the shapes and shardings of the state at hand. So a checkpoint written on 8
devices restores on 1, and one written under pmap restores under jit and back.
"""
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from deeplab_jax.errors import UserError

BEST_METRIC = 'miou'


def _policy(max_to_keep: int, keep_best: bool):
  latest = policies.LatestN(n=max_to_keep)
  if not keep_best:
    return latest
  best = policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1,
                        keep_checkpoints_without_metrics=False)
  return policies.AnyPreservationPolicy([latest, best])


class Checkpointer:
  """A CheckpointManager over WORKDIR/checkpoints holding whole TrainStates (async saves)."""

  def __init__(self, directory: str, max_to_keep: int = 3, keep_best: bool = True):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(create=True,
                                           preservation_policy=_policy(max_to_keep, keep_best))
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    return self.manager.best_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def restore(self, step: int, state):
    """Checkpoint `step` restored with state's shapes and shardings (any device count or mesh)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise UserError(f'Checkpoint {self.directory}/{step} does not match this config\'s model or is '
                      f'damaged ({type(e).__name__}: {str(e)[:300]}). Use another --workdir, or '
                      'delete that step folder to fall back to an earlier checkpoint.') from e

  def restore_or_keep(self, state):
    """The latest checkpoint restored with state's shapes and shardings, or state if there is none."""
    step = self.manager.latest_step()
    return state if step is None else self.restore(step, state)

  def save(self, step: int, state, force: bool = False, metrics: dict | None = None) -> bool:
    """Starts an asynchronous save of state at step (unless one for step exists).

    metrics ({'miou': ...}) rank the checkpoint for keeping the best one.
    """
    if step in self.manager.all_steps():
      return False
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    return self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=force)

  def close(self):
    """Waits for pending saves to finish."""
    self.manager.wait_until_finished()
    self.manager.close()


def _step_folder(path: str) -> tuple[str, int]:
  """(manager directory, step) of a run's checkpoints/ folder (its latest step) or of one step in it."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise UserError(f'train.init_checkpoint {path} does not exist. Point it at a run\'s checkpoints/ '
                    'folder or at one step folder inside it.')
  if os.path.basename(path).isdigit() and os.path.isdir(os.path.join(path, 'default')):
    return os.path.dirname(path), int(os.path.basename(path))
  steps = [int(d) for d in os.listdir(path) if d.isdigit()]
  if not steps:
    raise UserError(f'train.init_checkpoint {path} holds no checkpoint step folders.')
  return path, max(steps)


def read_variables(path: str) -> dict:
  """{'params', 'batch_stats'} of a checkpoint as host numpy arrays, whatever model wrote them."""
  directory, step = _step_folder(path)
  with ocp.CheckpointManager(directory, item_handlers=ocp.StandardCheckpointHandler()) as manager:
    meta = manager.item_metadata(step).tree
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype,
                                                           sharding=_host_sharding()), meta)
    restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  return jax.device_get({'params': restored['params'], 'batch_stats': restored['batch_stats']})


def _host_sharding():
  return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def merge_variables(fresh: dict, loaded: dict, reinit_prefixes: tuple[str, ...]) -> dict:
  """loaded's values in fresh's tree; leaves under reinit_prefixes whose shapes differ keep fresh's.

  Raises UserError naming the first other leaf that is missing or has another shape.
  """
  flat_loaded = {_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(loaded)[0]}

  def pick(path, value):
    name = _name(path)
    old = flat_loaded.get(name)
    if old is not None and np.shape(old) == value.shape:
      return np.asarray(old, value.dtype)
    if any(name.startswith(f'{kind}/{p}') for p in reinit_prefixes for kind in ('params', 'batch_stats')):
      return value
    found = 'missing' if old is None else f'shape {np.shape(old)}'
    raise UserError(f'train.init_checkpoint: {name} is {found} there but {value.shape} in this model. '
                    'Only train.last_layers may differ (with train.reinit_head_on_mismatch=True).')

  return jax.tree_util.tree_map_with_path(pick, jax.device_get(fresh))


def _name(path) -> str:
  return '/'.join(str(getattr(k, 'key', k)) for k in path)
