"""Run state on disk: the workdir, Orbax checkpoints of the train state, and model variables read back.

The one module that reads and writes a run's state: `prepare_workdir` (config.json), `Checkpointer`
(async saves, keep the newest N plus the best, restore-or-init for resuming), `read_variables` (params
and BatchNorm statistics of any checkpoint, for eval, predict, export and train.init_checkpoint) and
`merge_variables` (loaded variables into a fresh model's tree).

Faults: a damaged newest checkpoint (a truncated or missing file) or an unfinished one (a save killed
half-way leaves a `<step>.orbax-checkpoint-tmp` folder) is named in a one-line warning and the run
resumes from the newest intact one; asked for by step, it stops the run with one line. A full disk
during a save stops the run with one line naming the folder and the space a checkpoint needs.

Checkpoints hold the global, unreplicated state (what the jit front trains; the pmap front converts to
it), and are restored with the shapes and shardings of the state at hand. So a checkpoint written on 8
devices restores on 1, and one written under pmap restores under jit and back. Every path goes through
etils.epath (orbax's own paths too), so workdirs may be local or gs://.
"""
import contextlib
import errno
import re
import shutil
from typing import Callable

from absl import logging
from etils import epath
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

from deeplab_jax import paths
from deeplab_jax.errors import UserError
from deeplab_jax.models.deeplab import variable_shapes

BEST_METRIC = 'miou'
_UNFINISHED = re.compile(r'(\d+)\.orbax-checkpoint-tmp')  # a save that never finished


def _warn(line: str) -> None:
  logging.warning('%s', line)


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Creates workdir (or says why it can't) and writes the resolved config to WORKDIR/config.json."""
  try:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
      epath.Path(workdir, 'config.json').write_text(config.to_json(indent=1))
  except paths.io_errors() as e:
    reason = getattr(e, 'strerror', None) or str(e)  # OSError's reason, or TF's message (gs://)
    raise UserError(f'Cannot write to workdir {workdir}: {reason}. Pass a writable --workdir.') from e


def _policy(max_to_keep: int, keep_best: bool):
  latest = policies.LatestN(n=max_to_keep)
  if not keep_best:
    return latest
  best = policies.BestN(get_metric_fn=lambda m: m[BEST_METRIC], n=1,
                        keep_checkpoints_without_metrics=False)
  return policies.AnyPreservationPolicy([latest, best])


_ONE_REPLICA = ocp.type_handlers.ArrayHandler(use_replica_parallel=False)


def one_replica_writes_on_cpu() -> None:
  """On XLA:CPU, saves write each replicated array from one replica, not a slice from each.

  orbax's default there, replica-parallel saving, slices every replicated array among the devices
  holding it, a program compiled per array shape and slice: 208 for the tests' tiny ResNet on 8 devices,
  seconds at a run's first save. CPU devices share their host's memory and disk, so the slices save
  no time. The files are the same either way. GPU and TPU keep orbax's default.
  """
  if jax.default_backend() != 'cpu' or ocp.type_handlers.get_type_handler(jax.Array) is _ONE_REPLICA:
    return
  quiet = lambda record: 'Type handler registry' not in record.getMessage()  # noqa: E731 -- its note
  logger = logging.get_absl_logger()  # orbax notes each override in a warning line: not the user's news
  logger.addFilter(quiet)
  try:
    ocp.type_handlers.register_type_handler(jax.Array, _ONE_REPLICA, override=True)
  finally:
    logger.removeFilter(quiet)


class Checkpointer:
  """A CheckpointManager over WORKDIR/checkpoints holding whole TrainStates (async saves)."""

  def __init__(self, directory: str, max_to_keep: int = 3, keep_best: bool = True):
    one_replica_writes_on_cpu()
    self.directory = paths.absolute(directory)
    self.unfinished = unfinished_steps(self.directory)  # read before orbax cleans them up
    options = ocp.CheckpointManagerOptions(create=True, cleanup_tmp_directories=True,
                                           preservation_policy=_policy(max_to_keep, keep_best))
    self.manager = ocp.CheckpointManager(self.directory, options=options)
    self._saving = (None, 0)  # (step, bytes) of the latest save started
    self._disk_full = None  # the UserError of a save that ran out of space

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
                      f'damaged ({_reason(e)}). Use another --workdir, or delete that step folder to '
                      'fall back to an earlier checkpoint.') from e

  def restore_or_keep(self, state, log: Callable[[str], None] = _warn):
    """The newest intact checkpoint restored with state's shapes and shardings; state if there is none.

    Newer damaged or unfinished checkpoints are named in one warning line. If every checkpoint fails
    to restore, the newest one's UserError is raised: a run never silently starts from scratch.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    failed = {}
    for step in steps:
      try:
        restored = self.restore(step, state)
      except UserError as e:
        failed[step] = e
        continue
      _warn_skipped(log, self.directory, step, failed, self.unfinished)
      return restored
    if failed:
      raise failed[steps[0]]
    _warn_skipped(log, self.directory, None, {}, self.unfinished)
    return state

  def save(self, step: int, state, force: bool = False, metrics: dict | None = None) -> bool:
    """Starts an asynchronous save of state at step (unless one for step exists).

    metrics ({'miou': ...}) rank the checkpoint for keeping the best one (or `add_metrics` later).
    Raises UserError naming the folder and the space needed when the disk is full.
    """
    if step in self.manager.all_steps():
      return False
    metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
    self._saving = (step, _nbytes(state))
    with self._disk_errors():
      return self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=force)

  def add_metrics(self, step: int, metrics: dict) -> None:
    """Ranks the saved checkpoint `step` by metrics ({'miou': ...}) for keeping the best one.

    For a checkpoint saved before its evaluation: waits for the save, then writes the metrics where
    orbax keeps them (`<step>/metrics/metrics`), on process 0, and rereads them on every process.
    """
    self.wait()
    if step not in self.manager.all_steps():
      return
    if jax.process_index() == 0:
      folder = epath.Path(self.directory, str(step), 'metrics')
      folder.mkdir(parents=True, exist_ok=True)
      handler = ocp.JsonCheckpointHandler(filename='metrics')
      handler.save(folder, args=ocp.args.JsonSave({k: float(v) for k, v in metrics.items()}))
      handler.close()
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'deeplab_jax_metrics_{step}')
    self.manager.reload()

  @contextlib.contextmanager
  def _disk_errors(self):
    """Turns a full disk (ENOSPC, also from the background save thread) into one UserError line."""
    if self._disk_full is not None:
      raise self._disk_full
    try:
      yield
    except Exception as e:  # noqa: BLE001 -- orbax wraps the OSError in its own exceptions
      if not _is_disk_full(e):
        raise
      step, need = self._saving
      free = shutil.disk_usage(self.directory).free
      intact = [s for s in self.manager.all_steps() if s != step]
      self._disk_full = UserError(
          f'No space left on device saving the checkpoint of step {step} in {self.directory}: a '
          f'checkpoint needs about {_megabytes(need)}, {_megabytes(free)} are free there. Free space '
          '(or lower train.keep_checkpoints, or pass another --workdir) and rerun to resume from '
          + (f'step {max(intact)}, the newest intact checkpoint.' if intact else 'scratch.'))
      raise self._disk_full from e

  def wait(self):
    """Waits for pending saves to finish (UserError if the disk filled up)."""
    with self._disk_errors():
      self.manager.wait_until_finished()

  def close(self):
    """Waits for pending saves to finish; after a full disk (already reported) only closes."""
    try:
      if self._disk_full is None:
        self.wait()
    finally:
      try:
        self.manager.close()
      except Exception:  # noqa: BLE001
        if self._disk_full is None:  # else: the same error again, already raised as a UserError
          raise


def unfinished_steps(directory: str) -> list[int]:
  """Steps whose save never finished (killed half-way, or a full disk): orbax's temporary folders."""
  if not epath.Path(directory).is_dir():
    return []
  return sorted(int(m.group(1)) for m in map(_UNFINISHED.match, _names(directory)) if m)


def _names(directory: str) -> list[str]:
  """The entries of a folder by name (without the '/' that object stores may end sub-folders with)."""
  return [p.name for p in epath.Path(directory).iterdir()]


def _warn_skipped(log, directory: str, step: int | None, failed: dict, unfinished: list[int]) -> None:
  """One line naming the damaged and unfinished checkpoints newer than `step`, the one restored."""
  skipped = {s: _reason(e.__cause__) for s, e in failed.items()}
  skipped.update({s: 'an unfinished save' for s in unfinished if step is None or s > step})
  if not skipped:
    return
  names = '; '.join(f'step {s}: {skipped[s]}' for s in sorted(skipped, reverse=True))
  target = f'from step {step}, the newest intact one' if step is not None else 'from scratch: none is intact'
  log(f'Warning: damaged checkpoint(s) in {directory} ({names}); resuming {target}.')


_TENSORSTORE_CODES = {'OUT_OF_RANGE': 'a truncated file', 'NOT_FOUND': 'a missing file',
                      'DATA_LOSS': 'a corrupt file', 'FAILED_PRECONDITION': 'an unreadable file'}


def _reason(e: BaseException | None) -> str:
  """A short account of a failed restore: what is wrong and the file, from tensorstore's message."""
  if e is None:
    return 'unreadable'
  message = str(e)
  code = message.split(':', 1)[0].strip()
  files = re.findall(r'local file "([^"]+)"', message)
  if code in _TENSORSTORE_CODES:
    return _TENSORSTORE_CODES[code] + (f' {files[-1]}' if files else '')
  return f'{type(e).__name__}: {message.splitlines()[0][:200]}' if message else type(e).__name__


def _is_disk_full(e: BaseException | None) -> bool:
  """Whether e, or an exception it wraps, is ENOSPC."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
      return True
    if 'No space left on device' in str(e):
      return True
    if isinstance(e, BaseExceptionGroup) and any(_is_disk_full(x) for x in e.exceptions):
      return True
    e = e.__cause__ or e.__context__
  return False


def _nbytes(tree) -> int:
  return sum(int(x.size) * x.dtype.itemsize for x in jax.tree.leaves(tree) if hasattr(x, 'dtype'))


def _megabytes(n: int) -> str:
  return f'{n / 2**20:.1f} MB'


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


def _step_folder(path: str, step: int) -> tuple[str, list[int]]:
  """(manager directory, steps to try, newest first) of a run's checkpoints/ folder (`step`; 0: any,
  the latest intact one first) or of one step folder inside it (that step alone)."""
  path = paths.absolute(path)
  if not epath.Path(path).is_dir():
    raise UserError(f'Checkpoint folder {path} does not exist. Train first (--mode=train with the same '
                    '--workdir), or pass a trained run\'s --workdir (train.init_checkpoint: its '
                    'checkpoints/ folder or one step folder inside it).')
  folder = epath.Path(path)
  if folder.name.isdigit() and (folder / 'default').is_dir():
    return str(folder.parent), [int(folder.name)]
  steps = [int(d) for d in _names(path) if d.isdigit()]
  chosen = choose_step(steps, path, step)
  return path, [chosen] if step else sorted(steps, reverse=True)


def _host_sharding():
  return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def read_variables(path: str, *, step: int = 0, config: ml_collections.ConfigDict | None = None,
                   sharding: jax.sharding.Sharding | None = None,
                   log: Callable[[str], None] = _warn) -> tuple[dict, int]:
  """({'params', 'batch_stats'}, step) of a checkpoint; the optimizer state is never read.

  Args:
    path: a run's checkpoints/ folder, or one step folder inside it.
    step: the step to read from a checkpoints/ folder; 0: the latest intact one (newer damaged ones
      are named in one line through log).
    config: read with this config's model shapes (a mismatch is a UserError); None: read whatever
      model wrote the checkpoint, as host numpy arrays.
    sharding: where the arrays go (with config); default: the first local device.
    log: where the warning about skipped damaged checkpoints goes.

  Raises:
    UserError: no such folder, no checkpoints, no such step, a damaged checkpoint asked for by step
      (or every checkpoint damaged), or a checkpoint of another model.
  """
  directory, candidates = _step_folder(path, step)
  sharding = sharding or _host_sharding()
  failed = {}
  with ocp.CheckpointManager(directory, item_handlers=ocp.PyTreeCheckpointHandler()) as manager:
    for candidate in candidates:
      try:
        variables = _read_step(manager, directory, candidate, config, sharding)
      except UserError as e:
        failed[candidate] = e
        continue
      _warn_skipped(log, directory, candidate, failed, [])
      return variables, candidate
  raise failed[candidates[0]]


def _read_step(manager, directory: str, step: int, config, sharding) -> dict:
  """{'params', 'batch_stats'} of checkpoint step (see read_variables); UserError if unreadable."""
  try:
    if config is None:
      meta = manager.item_metadata(step).tree
      shapes = {k: meta[k] for k in ('params', 'batch_stats')}
    else:
      shapes = variable_shapes(config)
    abstract = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding), shapes)
    restored = manager.restore(step, args=ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
        partial_restore=True))
  except (ValueError, KeyError, FileNotFoundError, TypeError) as e:
    raise UserError(f'Checkpoint {directory}/{step} does not match this config\'s model or is '
                    f'damaged ({_reason(e)}). Pass the config the run was trained with '
                    '(WORKDIR/config.json holds it), or another step (--config.eval.step).') from e
  variables = {'params': restored['params'], 'batch_stats': restored['batch_stats']}
  return jax.device_get(variables) if config is None else variables


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
