"""Run state on disk: the workdir, Orbax checkpoints of the train state, and model variables read back.

The one module that reads and writes a run's state: `prepare_workdir` (config.json), `Checkpointer`
(async saves, keep the newest N plus the best, restore-or-init for resuming), `read_variables` (params
and BatchNorm statistics of any checkpoint, for eval, predict, export and train.init_checkpoint) and
`merge_variables` (loaded variables into a fresh model's tree).

Checkpoints hold the global, unreplicated state (what the jit front trains; the pmap front converts to
it), and are restored with the shapes and shardings of the state at hand. So a checkpoint written on 8
devices restores on 1, and one written under pmap restores under jit and back.
"""
import os

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from deeplab_jax.errors import UserError
from deeplab_jax.models.deeplab import variable_shapes

BEST_METRIC = 'miou'


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Creates workdir (or says why it can't) and writes the resolved config to WORKDIR/config.json."""
  try:
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
      with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(config.to_json(indent=1))
  except OSError as e:
    raise UserError(f'Cannot write to workdir {workdir}: {e.strerror}. Pass a writable --workdir.') from e


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


def choose_step(steps, directory: str, step: int = 0) -> int:
  """`step` if directory has it, the latest for 0; UserError naming what there is otherwise."""
  steps = sorted(steps)
  if not steps:
    raise UserError(f'No checkpoint in {directory}. Train first (--mode=train with the same --workdir) '
                    'or pass the --workdir of a trained run.')
  if step and step not in steps:
    raise UserError(f'No checkpoint for step {step} in {directory}; it has steps {steps}. Set '
                    '--config.eval.step to one of them, or 0 for the latest.')
  return step or steps[-1]


def _step_folder(path: str, step: int) -> tuple[str, int]:
  """(manager directory, step) of a run's checkpoints/ folder (`step`, 0: the latest) or of one step
  folder inside it."""
  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise UserError(f'Checkpoint folder {path} does not exist. Train first (--mode=train with the same '
                    '--workdir), or pass a trained run\'s --workdir (train.init_checkpoint: its '
                    'checkpoints/ folder or one step folder inside it).')
  if os.path.basename(path).isdigit() and os.path.isdir(os.path.join(path, 'default')):
    return os.path.dirname(path), int(os.path.basename(path))
  return path, choose_step([int(d) for d in os.listdir(path) if d.isdigit()], path, step)


def _host_sharding():
  return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def read_variables(path: str, *, step: int = 0, config: ml_collections.ConfigDict | None = None,
                   sharding: jax.sharding.Sharding | None = None) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) of a checkpoint; the optimizer state is never read.

  Args:
    path: a run's checkpoints/ folder, or one step folder inside it.
    step: the step to read from a checkpoints/ folder; 0: the latest.
    config: read with this config's model shapes (a mismatch is a UserError); None: read whatever
      model wrote the checkpoint, as host numpy arrays.
    sharding: where the arrays go (with config); default: the first local device.

  Raises:
    UserError: no such folder, no checkpoints, no such step, or a checkpoint of another model.
  """
  directory, step = _step_folder(path, step)
  sharding = sharding or _host_sharding()
  with ocp.CheckpointManager(directory, item_handlers=ocp.PyTreeCheckpointHandler()) as manager:
    if config is None:
      meta = manager.item_metadata(step).tree
      shapes = {k: meta[k] for k in ('params', 'batch_stats')}
    else:
      shapes = variable_shapes(config)
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), shapes)
    try:
      restored = manager.restore(step, args=ocp.args.PyTreeRestore(
          item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
          partial_restore=True))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise UserError(f'Checkpoint {directory}/{step} does not match this config\'s model or is '
                      f'damaged ({type(e).__name__}: {str(e)[:300]}). Pass the config the run was '
                      'trained with (WORKDIR/config.json holds it).') from e
  variables = {'params': restored['params'], 'batch_stats': restored['batch_stats']}
  return (jax.device_get(variables) if config is None else variables), step


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
