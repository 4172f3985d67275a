"""Multi-host start-up (join the other processes before anything touches a device) and agreeing when
to stop.

Preemption on a pod reaches the processes one by one, each at its own step; a collective save would
hang (or processes would save different steps) if each stopped when its own signal came. `StopVote`
max-reduces every process's stop flag over the mesh each step and reads the result one step later, so
all processes see the same answer at the same step without the host waiting on the devices. A
collective rather than `multihost_utils.reached_preemption_sync_point`: that one hears only SIGTERM
(through a C++ handler that the loop's own SIGINT/SIGTERM handler would replace) and needs a
coordination service; this one needs only the mesh the train step already runs on.

A file that goes bad mid-run on one process is voted the same way (`data_error_flag`): that process
trains one more step on its last good batch, so that the others are not left waiting in the step's
collectives (a process that exits alone takes the others down with a C++ abort, not one line), and
then all stop without saving that step. A run's first batch that one process cannot read is agreed on
before the first step (`agree_max`, at the barrier where the processes start together).
"""
import itertools
import os

import jax
from jax._src import distributed as jax_distributed  # the client's barrier, as orbax uses it
import jax.numpy as jnp
import numpy as np

from deeplab_jax import sharding


def initialize(coordinator_address: str = '', num_processes: int = 0, process_id: int = -1,
               auto: bool = False) -> bool:
  """Calls jax.distributed.initialize when this run spans several processes; returns whether it did.

  Args:
    coordinator_address: 'host:port' of process 0 (or env JAX_COORDINATOR_ADDRESS); '' with auto=False
      means a single-process run.
    num_processes, process_id: this run's process count and this process's index; 0 / -1 leave them to
      JAX's cluster auto-detection (SLURM, Open MPI, TPU pod slices, ...).
    auto: initialise with everything auto-detected (a TPU pod slice or a SLURM job needs no flags).
  """
  address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS', '')
  if not (address or auto):
    return False
  jax.distributed.initialize(address or None, num_processes or None,
                             process_id if process_id >= 0 else None)
  return True


_agreements = itertools.count()  # every process calls agree_max in the same order: one key each time


def agree_max(name: str, flag: int, timeout_s: int = 1800) -> int:
  """Waits until every process gets here and returns the largest flag any of them gave (the
  coordination service's barrier and key-value store; no device collective). One process: flag."""
  client = jax_distributed.global_state.client
  if client is None or jax.process_count() == 1:
    return flag
  key = f'deeplab_jax/{name}/{next(_agreements)}'
  client.key_value_set(f'{key}/{jax.process_index()}', str(flag))
  client.wait_at_barrier(key.replace('/', '_'), timeout_in_ms=timeout_s * 1000)
  return max(int(value) for _, value in client.key_value_dir_get(key))


DATA_ERROR = 1000  # flags from here up: process (flag - DATA_ERROR) could not read its next batch


def data_error_flag() -> int:
  """This process's StopVote flag for 'my next batch is unreadable' (above every signal number)."""
  return DATA_ERROR + jax.process_index()


class StopVote:
  """One stop decision for all processes: call once per step with this process's flag.

  The flag is a signal number, data_error_flag(), or 0 (none). With one process the answer is the
  flag itself, at once; with several it is the largest flag any process gave one call earlier (a max
  all-reduce dispatched now and read at the next call, when the devices have long finished it), the
  same on every process.
  """

  def __init__(self, mesh: jax.sharding.Mesh):
    self.mesh = mesh
    self.single = jax.process_count() == 1
    self._pending = None
    self._max = jax.jit(jnp.max, out_shardings=sharding.replicated(mesh))

  def __call__(self, flag: int) -> int:
    if self.single:
      return flag
    local = np.full([len(self.mesh.local_devices)], flag, np.int32)
    flags = jax.make_array_from_process_local_data(sharding.batch_sharding(self.mesh), local)
    agreed, self._pending = self._pending, self._max(flags)
    return 0 if agreed is None else int(agreed.addressable_data(0))
