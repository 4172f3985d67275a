"""Train-step and inference throughput, memory and MFU of a config's model, on fake in-memory batches.

  python -m deeplab_jax.benchmarks.step --config=configs/v3_voc.py --batch=16 --size=513 --steps=20 \\
      --warmup=3 --dtype=bfloat16 [--config.model.remat=backbone] [--peak_tflops=989.4]

No dataset and no TensorFlow: the batches are random arrays made once and reused, so the figures are
the model's (forward, backward, SGD update) alone. Times are medians over the timed steps after the
warm-up; compile time is reported apart. MFU counts the analytic multiply-adds of models/summary.py
(2 FLOPs each; x3 for a train step: forward, and the backward's input and weight gradients) against the
device's peak for the compute dtype.
"""
import json
import statistics
import sys
import time
from typing import Any, Callable

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags, torch_step's too; defined only when run, so the benchmarks import side by side."""
  config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/v3_voc.py.')
  flags.DEFINE_integer('batch', 16, 'Global batch (split over all local devices).')
  flags.DEFINE_integer('size', 513, 'Square image side.')
  flags.DEFINE_integer('steps', 20, 'Timed steps per measurement.')
  flags.DEFINE_integer('warmup', 3, 'Untimed steps after compilation.')
  flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], 'Compute dtype; default: config.')
  flags.DEFINE_list('modes', ['train', 'inference'], 'Any of train, inference.')
  flags.DEFINE_float('peak_tflops', 0.0, 'Device peak TFLOP/s for MFU; 0: the built-in table.')
  flags.DEFINE_string('json', None, 'Also write the results to this JSON file.')


# Dense peak TFLOP/s per device kind (substring of jax's device_kind) and compute dtype. float32 matmuls
# and convs on these GPUs run on TF32 tensor cores under XLA's default precision, hence the TF32 peak.
# Sources: NVIDIA H100/H200 and A100 datasheets (SXM, without sparsity).
PEAK_TFLOPS = {
    ('H200', 'bfloat16'): 989.4, ('H200', 'float32'): 494.7,
    ('H100', 'bfloat16'): 989.4, ('H100', 'float32'): 494.7,
    ('A100', 'bfloat16'): 312.0, ('A100', 'float32'): 156.0,
}


def peak_flops(device_kind: str, dtype: str, override_tflops: float = 0.0) -> float | None:
  """Peak FLOP/s of one device for `dtype`; None when unknown (CPUs: no table entry, pass a value)."""
  if override_tflops:
    return override_tflops * 1e12
  for (kind, table_dtype), tflops in PEAK_TFLOPS.items():
    if kind.lower() in device_kind.lower() and table_dtype == dtype:
      return tflops * 1e12
  return None


def fake_batch(batch: int, size: int, num_classes: int) -> dict:
  """{'image': [B, S, S, 3] float32 ~ N(0, 1), 'label': [B, S, S] int32 in [0, num_classes)}."""
  import numpy as np
  rng = np.random.default_rng(0)
  return {'image': rng.standard_normal((batch, size, size, 3), dtype=np.float32),
          'label': rng.integers(0, num_classes, (batch, size, size), dtype=np.int32)}


def timed_steps(run: Callable[[], Any], steps: int, warmup: int) -> list[float]:
  """Seconds of each of `steps` calls of `run` (which must block until done), after `warmup` calls."""
  for _ in range(warmup):
    run()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  return times


def interleaved_times(runs: dict[str, Callable[[], Any]], steps: int, warmup: int,
                      settle: int = 0) -> dict[str, list[float]]:
  """timed_steps of several runners, one step of each in turn, so machine load hits them alike.

  settle: untimed steps of a runner just before each of its timed ones, so that every timed step
  follows a step of its own kind, as it does in a run of that side alone (on a 2-core CPU a v3+
  ResNet-101 train step at 512² took 12.3 s right after a PyTorch step and 9.1 s right after its own).
  """
  for _ in range(warmup):
    for run in runs.values():
      run()
  times = {name: [] for name in runs}
  for _ in range(steps):
    for name, run in runs.items():
      times[name].extend(timed_steps(run, 1, settle))
  return times


def memory_report(compiled: Any, device: Any) -> dict:
  """XLA's compile-time sizes (deterministic) and the device's measured peak where it keeps one.

  Returns:
    {'temp_bytes', 'argument_bytes', 'output_bytes': from compiled.memory_analysis(), 'peak_bytes':
     device.memory_stats()['peak_bytes_in_use'] or None (CPU devices keep no statistics)}.
  """
  analysis = compiled.memory_analysis()
  stats = device.memory_stats() or {}
  return {'temp_bytes': getattr(analysis, 'temp_size_in_bytes', None),
          'argument_bytes': getattr(analysis, 'argument_size_in_bytes', None),
          'output_bytes': getattr(analysis, 'output_size_in_bytes', None),
          'peak_bytes': stats.get('peak_bytes_in_use')}


def analytic_macs(config: Any, size: int) -> int:
  """Multiply-adds of one [1, S, S, 3] image through the config's model (models/summary.py)."""
  from deeplab_jax.models import summary
  from deeplab_jax.models.deeplab import build_model
  return summary.summarize(build_model(config, train=False), size)['macs']


def init_key() -> Any:
  """The key that initialises the variables: their values do not change the timings, and the init
  program of an 'rbg' key compiles ~3x faster than threefry's on XLA:CPU (6 s against 16 s for the
  smoke test's 117 variables)."""
  import jax
  return jax.random.key(0, impl='rbg')


def train_runner(config: Any, batch: dict) -> tuple[Callable[[], None], float, Any]:
  """(run one train step and block, compile seconds, compiled step) on the real train_step."""
  import jax

  from deeplab_jax import sharding
  from deeplab_jax.train import optimizer, steps
  from deeplab_jax.train import state as state_lib
  mesh = sharding.make_mesh()
  state = state_lib.init_state(config, sharding.replicated(mesh), init_key())
  step = steps.jit_train_step(mesh, steps.step_options(config, optimizer.poly_schedule(config.train)))
  device_batch = jax.device_put(batch, sharding.batch_sharding(mesh))
  rng = jax.random.key(1)
  start = time.perf_counter()
  compiled = step.lower(state, device_batch, rng).compile()
  compile_s = time.perf_counter() - start
  holder = [state]

  def run():
    holder[0], metrics = compiled(holder[0], device_batch, rng)
    jax.block_until_ready(metrics['loss'])

  return run, compile_s, compiled


def inference_runner(config: Any, batch: dict) -> tuple[Callable[[], None], float, Any]:
  """(run one forward pass to full-size logits and block, compile seconds, compiled forward)."""
  import jax

  from deeplab_jax import sharding
  from deeplab_jax.models.deeplab import build_model
  model = build_model(config, train=False)
  images = batch['image']
  variables = jax.jit(model.init)(init_key(), images[:1])
  mesh = sharding.make_mesh()
  forward = jax.jit(lambda v, x: model.apply(v, x)['logits'],
                    in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)))
  variables = jax.device_put(variables, sharding.replicated(mesh))
  device_images = jax.device_put(images, sharding.batch_sharding(mesh))
  start = time.perf_counter()
  compiled = forward.lower(variables, device_images).compile()
  compile_s = time.perf_counter() - start
  return (lambda: jax.block_until_ready(compiled(variables, device_images))), compile_s, compiled


def result(mode: str, times: list[float], compile_s: float, memory: dict, batch: int, macs: int,
           peak: float | None) -> dict:
  """One measurement as a dict: images/s from the median step, MFU when the peak is known."""
  median = statistics.median(times)
  flops = 2 * macs * batch * (3 if mode == 'train' else 1)
  return {'mode': mode, 'median_s': median, 'images_per_s': batch / median, 'compile_s': compile_s,
          'step_times_s': times, 'model_tflop_per_step': flops / 1e12,
          'mfu': flops / median / peak if peak else None, **memory}


def run_benchmark(config: Any, batch_size: int, size: int, steps: int, warmup: int,
                  modes: list[str], peak_tflops: float = 0.0) -> dict:
  """Measures each mode in turn; returns {'device', 'dtype', 'gmacs_per_image', 'results': [...]}."""
  import jax
  device = jax.devices()[0]
  peak = peak_flops(device.device_kind, config.model.dtype, peak_tflops)
  macs = analytic_macs(config, size)
  batch = fake_batch(batch_size, size, config.data.num_classes)
  runners = {'train': train_runner, 'inference': inference_runner}
  results = []
  for mode in modes:
    run, compile_s, compiled = runners[mode](config, batch)
    times = timed_steps(run, steps, warmup)
    results.append(result(mode, times, compile_s, memory_report(compiled, device), batch_size, macs,
                          peak))
    del run, compiled
  return {'device': f'{jax.default_backend()} {device.device_kind} x{jax.device_count()}',
          'dtype': config.model.dtype, 'batch': batch_size, 'size': size,
          'gmacs_per_image': macs / 1e9, 'peak_tflops': peak / 1e12 if peak else None,
          'results': results}


def _mib(value: int | None, missing: str) -> str:
  return f'{value / 2**20:,.0f} MiB' if value is not None else missing


def format_report(report: dict) -> str:
  """The report as text, one block per mode."""
  peak = report['peak_tflops']
  lines = [f"device {report['device']}, {report['dtype']}, batch {report['batch']}, "
           f"{report['size']}x{report['size']}, {report['gmacs_per_image']:.2f} GMACs/image (analytic), "
           f"peak {f'{peak:.1f} TFLOP/s' if peak else 'unknown (MFU n/a; pass --peak_tflops)'}"]
  for r in report['results']:
    mfu = f"{100 * r['mfu']:.1f}%" if r['mfu'] is not None else 'n/a'
    lines.append(
        f"{r['mode']:>9}: {r['images_per_s']:.3f} images/s (median step {r['median_s'] * 1e3:.1f} ms "
        f"over {len(r['step_times_s'])}), compile {r['compile_s']:.1f} s, MFU {mfu}, "
        f"peak device memory {_mib(r['peak_bytes'], 'n/a on CPU')}, XLA temp "
        f"{_mib(r['temp_bytes'], 'n/a')} + arguments {_mib(r['argument_bytes'], 'n/a')}")
  return '\n'.join(lines)


def check_modes(modes: list[str]) -> None:
  """Exits with a one-line error when --modes names something other than train and inference."""
  unknown = set(modes) - {'train', 'inference'}
  if unknown:
    sys.exit(f'error: --modes: unknown {sorted(unknown)}; use train and/or inference')


def main(argv):
  del argv
  config = FLAGS.config
  if config is None:
    sys.exit('error: pass --config=configs/<name>.py')
  if FLAGS.dtype:
    config.model.dtype = FLAGS.dtype
  check_modes(FLAGS.modes)
  report = run_benchmark(config, FLAGS.batch, FLAGS.size, FLAGS.steps, FLAGS.warmup, FLAGS.modes,
                         FLAGS.peak_tflops)
  print(format_report(report))
  if FLAGS.json:
    with open(FLAGS.json, 'w') as f:
      json.dump(report, f, indent=1)


if __name__ == '__main__':
  define_flags()
  flags.mark_flag_as_required('config')
  app.run(main)
