"""Host memory over a long run: the process's RSS every N steps of a real training run, and its slope.

    python -m deeplab_jax.benchmarks.soak [--config=configs/quickstart.py] [--steps=3000] [--every=100] \\
        [--warmup=300] [--workdir=DIR] [--config.data.root=...]

Trains the config (quickstart: its synthetic data, generated on first use) through the real loop --
tf.data pipeline, metric writer, periodic checkpoints -- for --steps steps, reading the resident set
size at every --every-th step's log line. Prints the samples, then the least-squares slope in MB per
1000 steps over the samples after --warmup (compilation, allocator pools and tf.data buffers settle
first; the first checkpoint save also raises RSS once, by ~280 MB on the tiny test model, so
--warmup should reach past it: the quickstart saves at step 300). A flat run has a slope near
zero; a per-step leak of k bytes shows as k MB per 1000 steps. RSS also swings by tens of MB as
allocator pools are taken and given back, which dominates the slope of a short run; the floor
growth (lowest RSS of the second half of the samples after --warmup minus that of the first half)
is steadier: a leak raises the floor, a transient swing does not.
Linux only (reads /proc/self/statm).
"""
import json
import os
import shutil
import tempfile

from absl import app, flags
from ml_collections import config_flags
import numpy as np

from deeplab_jax.errors import UserError

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  config_flags.DEFINE_config_file('config', 'configs/quickstart.py', 'The run to soak.')
  flags.DEFINE_integer('steps', 3000, 'Training steps.')
  flags.DEFINE_integer('every', 100, 'Steps between RSS samples (the run logs at each).')
  flags.DEFINE_integer('warmup', 300, 'Steps before the samples the slope is fitted to.')
  flags.DEFINE_string('workdir', os.path.join(tempfile.gettempdir(), 'deeplab_jax_soak'),
                      'Run folder; emptied first, so the run starts from scratch.')


def rss_mb() -> float:
  """This process's resident set size in MB."""
  try:
    with open('/proc/self/statm') as f:
      resident_pages = int(f.read().split()[1])
  except OSError as e:
    raise UserError(f'The soak benchmark reads /proc/self/statm (Linux); it failed: {e}') from e
  return resident_pages * os.sysconf('SC_PAGE_SIZE') / 2**20


def soak(config, workdir: str, every: int, log=print) -> list[tuple[int, float]]:
  """Trains config from scratch in workdir; returns (step, RSS MB) at every `every`-th step."""
  from deeplab_jax.train import loop  # after flags: importing JAX and TensorFlow takes seconds
  config = config.copy_and_resolve_references()
  config.train.log_every = every
  config.train.eval_every = 0
  samples = []

  def record(line: str):
    if line.startswith('step '):
      samples.append((int(line.split()[1].split('/')[0]), rss_mb()))
      line = f'{line}  rss {samples[-1][1]:.1f} MB'
    log(line)

  loop.train_and_evaluate(config, workdir, log=record)
  return samples


def slope(samples: list[tuple[int, float]], warmup: int) -> float:
  """Least-squares RSS slope in MB per 1000 steps over the samples at steps > warmup."""
  kept = [(s, m) for s, m in samples if s > warmup]
  if len(kept) < 3:
    raise UserError(f'{len(kept)} RSS samples after --warmup={warmup}: too few for a slope. Raise '
                    '--steps or lower --every / --warmup.')
  steps, mb = np.asarray(kept, np.float64).T
  return float(np.polyfit(steps, mb, 1)[0] * 1000)


def floor_growth(samples: list[tuple[int, float]], warmup: int) -> float:
  """MB: the lowest RSS in the second half of the samples after warmup minus the first half's lowest."""
  kept = [m for s, m in samples if s > warmup]
  if len(kept) < 4:
    raise UserError(f'{len(kept)} RSS samples after --warmup={warmup}: too few. Raise --steps or '
                    'lower --every / --warmup.')
  half = len(kept) // 2
  return min(kept[half:]) - min(kept[:half])


def main(argv):
  del argv
  config = FLAGS.config
  config.train.num_steps = FLAGS.steps
  shutil.rmtree(FLAGS.workdir, ignore_errors=True)
  samples = soak(config, FLAGS.workdir, FLAGS.every)
  kept = [m for s, m in samples if s > FLAGS.warmup]
  print(json.dumps({'steps': FLAGS.steps, 'every': FLAGS.every, 'warmup': FLAGS.warmup,
                    'rss_mb': [[s, round(m, 1)] for s, m in samples],
                    'slope_mb_per_1000_steps': round(slope(samples, FLAGS.warmup), 2),
                    'floor_growth_mb': round(floor_growth(samples, FLAGS.warmup), 1),
                    'rss_range_after_warmup_mb': round(max(kept) - min(kept), 1)}))


if __name__ == '__main__':
  define_flags()
  app.run(main)
