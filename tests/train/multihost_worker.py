"""One process of a two-process CPU run: python -m tests.train.multihost_worker PORT ID OUT.npz.

Each process has 4 host CPU devices and feeds its half of every global batch; process 0 writes the
final parameters to OUT.npz.
"""
import os
import sys

import jax
import numpy as np

from deeplab_jax.train import distributed
from tests.train.helpers import fixed_config, random_batches, run_steps

# After the imports (tests.conftest asks for 8 devices) and before JAX creates its CPU backend.
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=4'


def main(port: str, process_id: str, out: str):
  distributed.initialize(f'127.0.0.1:{port}', 2, int(process_id))
  assert jax.device_count() == 8 and jax.local_device_count() == 4
  local = slice(jax.process_index() * 4, (jax.process_index() + 1) * 4)
  batches = [{k: v[local] for k, v in batch.items()} for batch in random_batches(3)]
  state, history = run_steps(fixed_config(), batches)
  params = jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state.params)
  if jax.process_index() == 0:
    flat = {'/'.join(str(k.key) for k in path): v
            for path, v in jax.tree_util.tree_flatten_with_path(params)[0]}
    np.savez(out, loss=np.asarray([m['loss'] for m in history]), **flat)
  jax.distributed.shutdown()


if __name__ == '__main__':
  main(*sys.argv[1:])
