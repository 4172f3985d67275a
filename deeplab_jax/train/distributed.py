"""Multi-host start-up: join the other processes of a run before anything touches a device."""
import os

import jax


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
