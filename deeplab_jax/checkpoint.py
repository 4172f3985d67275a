"""Orbax checkpoints of the train state: periodic saves, keep the newest N, resume from the latest."""
import os

import jax
import orbax.checkpoint as ocp

from deeplab_jax.errors import UserError


class Checkpointer:
  """A CheckpointManager over WORKDIR/checkpoints holding whole TrainStates (async saves)."""

  def __init__(self, directory: str, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def restore_or_keep(self, state):
    """The latest checkpoint restored with state's shapes and shardings, or state if there is none."""
    step = self.manager.latest_step()
    if step is None:
      return state
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    try:
      return self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError, FileNotFoundError) as e:
      raise UserError(f'Checkpoint {self.directory}/{step} does not match this config\'s model or is '
                      f'damaged ({type(e).__name__}: {str(e)[:300]}). Use another --workdir, or '
                      'delete that step folder to fall back to an earlier checkpoint.') from e

  def save(self, step: int, state, force: bool = False) -> bool:
    """Starts an asynchronous save of state at step (unless one for step exists)."""
    if step in self.manager.all_steps():
      return False
    return self.manager.save(step, args=ocp.args.StandardSave(state), force=force)

  def close(self):
    """Waits for pending saves to finish."""
    self.manager.wait_until_finished()
    self.manager.close()
