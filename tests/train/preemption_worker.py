"""One process of a two-process run preempted, then given a bad file, on one process only.

    python -m tests.train.preemption_worker PORT ID BASE DATA_ROOT [first_batch]

Each process (2 host CPU devices) trains loop_config's model for 6 steps: straight through in
BASE/straight; then four times in BASE/run: process 1 alone gets SIGTERM as it reads its second batch;
the run resumes, saving every 3 steps, and process 1 alone cannot read its batch of step 5 (as the
pipeline reports a file gone bad); the run resumes once more to the end. It prints one line
'RESULT {json}' with its exit status after the SIGTERM, the latest checkpoint step then, process 0's
last log line, and its error and latest checkpoint step after the bad batch. The final evaluation is
skipped (this is about training state; evaluation has its own tests). A persistent compilation cache
in BASE spares process 0's later runs their compiles (jax writes it from process 0 only, and process
1's keys differ: XLA:CPU's topology fingerprint is per process).

With `first_batch`, process 1 alone cannot read the first batch of a run in BASE/first, and the
RESULT line holds each process's error.
"""
import faulthandler
import json
import os
import signal
import sys

import jax
from jax.experimental import multihost_utils

from deeplab_jax import checkpoint
from deeplab_jax.errors import UserError
from deeplab_jax.train import distributed, loop
from tests.train.fault_helpers import BAD_FILE, loop_config

# After the imports (tests.conftest asks for 8 devices) and before JAX creates its CPU backend; no LLVM
# optimisation: two processes compile on 2 cores and the few-step runs are compile-bound.
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0'


def fault_at_batch(real, index: int, fault):
  """train_batches that calls fault() as it is about to hand out batch `index` (0-based)."""
  def batches(*args, **kwargs):
    for i, batch in enumerate(real(*args, **kwargs)):
      if i == index:
        fault()
      yield batch
  return batches


def sigterm():
  os.kill(os.getpid(), signal.SIGTERM)


def bad_file():
  raise UserError(f'Bad input data: {BAD_FILE}: cannot decode the image')


def latest_step(workdir: str) -> int | None:
  checkpointer = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  step = checkpointer.latest_step()
  checkpointer.close()
  return step


def main(port: str, process_id: str, base: str, data_root: str, mode: str = 'preempt_then_bad'):
  faulthandler.dump_traceback_later(1500, exit=True)  # a hang ends in a traceback, not a stuck test
  jax.config.update('jax_compilation_cache_dir', os.path.join(base, 'compilation_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', -1)
  distributed.initialize(f'127.0.0.1:{port}', 2, int(process_id))
  assert jax.process_count() == 2 and jax.local_device_count() == 2
  loop._evaluate = lambda run, split, state: {}  # noqa: SLF001
  if mode == 'first_batch':
    first_batch(data_root, base)
  else:
    preempt_then_bad(data_root, base)
  jax.distributed.shutdown()


def first_batch(data_root: str, base: str):
  if jax.process_index() == 1:
    loop.pipeline.train_batches = fault_at_batch(loop.pipeline.train_batches, 0, bad_file)
  try:
    loop.train_and_evaluate(loop_config(data_root, num_steps=2), os.path.join(base, 'first'),
                            log=lambda _: None)
    error = ''
  except UserError as e:
    error = str(e)
  print('RESULT ' + json.dumps({'process': jax.process_index(), 'error': error}), flush=True)


def preempt_then_bad(data_root: str, base: str):
  config = loop_config(data_root, num_steps=6)
  config.train.checkpoint_every = 100  # saves at the stop and at the end only
  quiet = lambda _: None  # noqa: E731
  loop.train_and_evaluate(config, os.path.join(base, 'straight'), log=quiet)

  run = os.path.join(base, 'run')
  real = loop.pipeline.train_batches
  if jax.process_index() == 1:
    loop.pipeline.train_batches = fault_at_batch(real, 1, sigterm)
  lines = []
  try:
    loop.train_and_evaluate(config, run, log=lines.append)
    code = 0
  except SystemExit as e:
    code = e.code
  loop.pipeline.train_batches = real
  saved = latest_step(run)
  multihost_utils.sync_global_devices('preemption_worker_resume')

  config.train.checkpoint_every = 3  # step 3 is saved before the bad batch of step 5
  if jax.process_index() == 1:
    # The resumed stream's batches are those of steps saved + 1, saved + 2, ...
    loop.pipeline.train_batches = fault_at_batch(real, 4 - saved, bad_file)
  try:
    loop.train_and_evaluate(config, run, log=quiet)
    error = ''
  except UserError as e:
    error = str(e)
  loop.pipeline.train_batches = real
  bad_saved = latest_step(run)
  multihost_utils.sync_global_devices('preemption_worker_resume_bad')
  loop.train_and_evaluate(config, run, log=quiet)
  print('RESULT ' + json.dumps({'process': jax.process_index(), 'exit': code, 'saved': saved,
                                'last_line': lines[-1] if lines else '', 'error': error,
                                'bad_saved': bad_saved}), flush=True)


if __name__ == '__main__':
  main(*sys.argv[1:])
