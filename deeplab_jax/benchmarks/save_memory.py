"""Host memory per checkpoint save: RSS and Python-traced memory over N saves of one state.

    python -m deeplab_jax.benchmarks.save_memory [--saves=200] [--arrays=60] [--side=256] [--every=25]

Saves a state of --arrays float32 arrays of --side x --side (60 x 256 x 256: 15 MB) --saves times
through deeplab_jax.checkpoint.Checkpointer (orbax, async, 3 kept), waiting for each save, and samples
the resident set size and tracemalloc's traced total every --every saves. Then prints the allocation
sites whose live memory grew most between the 10th and the last save: memory that each save leaves
behind, and whose code keeps it. Linux only (reads /proc/self/statm).
"""
import gc
import os
import tempfile
import tracemalloc

from absl import app, flags, logging
import jax.numpy as jnp

from deeplab_jax import checkpoint
from deeplab_jax.benchmarks.soak import rss_mb

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  flags.DEFINE_integer('saves', 200, 'Checkpoint saves.')
  flags.DEFINE_integer('arrays', 60, 'Arrays in the saved state.')
  flags.DEFINE_integer('side', 256, 'Each array is side x side float32.')
  flags.DEFINE_integer('every', 25, 'Saves between samples.')
  flags.DEFINE_integer('top', 5, 'Allocation sites to print.')


def measure(saves: int, arrays: int, side: int, every: int, folder: str, log=print):
  """([(save, rss MB, traced MB)], tracemalloc statistics diffs between save min(10, saves) and the last)."""
  state = {f'w{i}': jnp.full((side, side), i, jnp.float32) for i in range(arrays)}  # as a train state's
  saver = checkpoint.Checkpointer(os.path.join(folder, 'checkpoints'), max_to_keep=3, keep_best=False)
  tracemalloc.start(25)
  samples, first = [], None
  try:
    for step in range(1, saves + 1):
      saver.save(step, state)
      saver.wait()
      gc.collect()
      if step == min(10, saves):
        first = tracemalloc.take_snapshot()
      if step % every == 0 or step == saves:
        samples.append((step, rss_mb(), tracemalloc.get_traced_memory()[0] / 2**20))
        log(f'save {step}: RSS {samples[-1][1]:.1f} MB, traced {samples[-1][2]:.2f} MB')
    growth = tracemalloc.take_snapshot().compare_to(first, 'traceback')
  finally:
    tracemalloc.stop()
    saver.close()
  return samples, growth


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs several INFO lines per save
  with tempfile.TemporaryDirectory() as folder:
    samples, growth = measure(FLAGS.saves, FLAGS.arrays, FLAGS.side, FLAGS.every, folder)
  (s0, rss0, traced0), (s1, rss1, traced1) = samples[0], samples[-1]
  per_save = 1024 / max(s1 - s0, 1)
  print(f'saves {s0} -> {s1}: RSS +{(rss1 - rss0) * per_save:.1f} KB per save, traced Python memory '
        f'+{(traced1 - traced0) * per_save:.1f} KB per save')
  for stat in growth[:FLAGS.top]:
    print(f'+{stat.size_diff / 1024:.1f} KB in {stat.count_diff} blocks, allocated at:')
    for line in stat.traceback.format()[-6:]:
      print('   ', line)


if __name__ == '__main__':
  define_flags()
  app.run(main)
