"""Where a train (or inference) step's time goes: XLA's compiled ops, timed by the JAX profiler.

  python -m deeplab_jax.benchmarks.profile --config=configs/pretrained/smp_deeplabv3plus.py:resnet101 \\
      --config.data.num_classes=11 --batch=4 --size=208 --steps=3 [--mode=inference] [--top=25]

Runs the benchmark's step (benchmarks/step.py: the real train step on fake batches), traces `steps` of
them, and matches each traced op to the compiled program's instruction of that name: its kind (conv,
dot, or the fusion's kind: elementwise, pad, transpose, reduce ...), its output shape and the model layer
it came from (the op_name metadata, 'B ' for the backward pass). Prints the time per kind and the
slowest ops. The times are summed op times per step: XLA:CPU runs independent ops at once, so their sum
can exceed the step's wall time, and the shares are of that sum. Made for XLA:CPU, whose trace names
each op after its instruction; other backends' traces name kernels and are not matched.
"""
import collections
import glob
import gzip
import json
import re
import sys
import tempfile
from typing import Any

from absl import app, flags
from ml_collections import config_flags

FLAGS = flags.FLAGS


def define_flags() -> None:
  config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/v3_voc.py.')
  flags.DEFINE_integer('batch', 4, 'Global batch.')
  flags.DEFINE_integer('size', 208, 'Square image side.')
  flags.DEFINE_integer('steps', 3, 'Traced steps (after two untraced ones).')
  flags.DEFINE_enum('mode', 'train', ['train', 'inference'], 'Which step.')
  flags.DEFINE_integer('top', 25, 'How many of the slowest ops to list.')


_INSTRUCTION = re.compile(r'^\s+(?:ROOT )?%?([\w.\-]+) = (\S+) ([\w\-]+)\((.*)$')
_COMPUTATION = re.compile(r'^(?:ENTRY )?%?([\w.\-]+) .*\{$')


def instructions(hlo_text: str) -> dict[str, dict]:
  """{instruction name: {'kind', 'shape', 'layer'}} of a compiled HLO module's text.

  kind: 'conv' or 'dot' for an op (or fusion) that computes one, else the fusion's name without its
  number ('copy_bitcast_fusion': a transposed copy fused with what produced it) or the op's opcode.
  layer: the op_name metadata without jit/jvp wrappers ('B ' prefix: the backward pass), or ''.
  """
  computations: dict[str, list[tuple[str, str, str]]] = {}
  current = None
  for line in hlo_text.splitlines():
    match = _COMPUTATION.match(line)
    if match and not line.startswith(' '):
      current = computations.setdefault(match.group(1), [])
    elif current is not None:
      op = _INSTRUCTION.match(line)
      if op:
        current.append(op.groups())
  table = {}
  for ops in computations.values():
    for name, shape, opcode, rest in ops:
      called = re.search(r'calls=%?([\w.\-]+)', rest)
      inner = computations.get(called.group(1), []) if called else []
      opcodes = {o[2] for o in inner} | {opcode}
      if 'convolution' in opcodes:
        kind = 'conv'
      elif 'dot' in opcodes:
        kind = 'dot'
      elif opcode == 'fusion':
        kind = re.sub(r'\.\d+$', '', name)
      else:
        kind = opcode
      names = [m.group(1) for text in [rest] + [o[3] for o in inner]
               for m in [re.search(r'op_name="([^"]+)"', text)] if m]
      table[name] = {'kind': kind, 'shape': shape, 'layer': _layer(collections.Counter(names)
                                                                    .most_common(1)[0][0]) if names else ''}
  return table


def _layer(op_name: str) -> str:
  backward = 'transpose(' in op_name
  path, previous = op_name, None
  while path != previous:  # transpose(jvp(DeepLab)) -> DeepLab, innermost first
    path, previous = re.sub(r'(jit|transpose|jvp|remat\d*|checkpoint)\(([^()]*)\)', r'\2', path), path
  parts = [p for p in path.replace('(', '/').replace(')', '').split('/')
           if p and not p.startswith(('train_step', 'DeepLab', 'jit', 'closed_call', '<lambda>'))]
  return ('B ' if backward else '') + '/'.join(parts)


def op_times(trace_dir: str, steps: int) -> dict[str, float]:
  """Milliseconds per step of each traced event name in the profile under trace_dir."""
  paths = glob.glob(f'{trace_dir}/**/*.trace.json.gz', recursive=True)
  if not paths:
    raise RuntimeError(f'{trace_dir}: the profiler wrote no *.trace.json.gz.')
  with gzip.open(paths[0]) as f:
    events = json.load(f)['traceEvents']
  times = collections.Counter()
  for event in events:
    if event.get('ph') == 'X':
      times[event['name']] += event.get('dur', 0) / 1000 / steps
  return dict(times)


def breakdown(times: dict[str, float], table: dict[str, dict], top: int) -> dict[str, Any]:
  """{'total_ms', 'kinds': [(kind, ms)], 'ops': [(ms, name, kind, shape, layer)]}, slowest first."""
  matched = {name: ms for name, ms in times.items() if name in table}
  kinds = collections.Counter()
  for name, ms in matched.items():
    kinds[table[name]['kind']] += ms
  ops = sorted(((ms, name, table[name]['kind'], table[name]['shape'], table[name]['layer'])
                for name, ms in matched.items()), reverse=True)
  return {'total_ms': sum(matched.values()), 'kinds': kinds.most_common(), 'ops': ops[:top]}


def format_breakdown(result: dict[str, Any], wall_ms: float) -> str:
  total = result['total_ms'] or 1.0
  lines = [f'summed op time {result["total_ms"]:.1f} ms per step (wall {wall_ms:.1f} ms: ops overlap)',
           '', '| kind | ms per step | share |', '|---|---|---|']
  lines += [f'| {kind} | {ms:.1f} | {100 * ms / total:.1f} % |' for kind, ms in result['kinds'][:20]]
  lines += ['', '| ms | op | kind | shape | layer |', '|---|---|---|---|---|']
  lines += [f'| {ms:.1f} | {name} | {kind} | {shape.split("{")[0]} | {layer} |'
            for ms, name, kind, shape, layer in result['ops']]
  return '\n'.join(lines)


def profile(config: Any, batch_size: int, size: int, steps: int, mode: str, top: int) -> tuple[dict, float]:
  """(breakdown of `steps` traced steps, wall ms of the faster of two untraced steps)."""
  import jax

  from deeplab_jax.benchmarks import step as step_bench
  batch = step_bench.fake_batch(batch_size, size, config.data.num_classes)
  runner = step_bench.train_runner if mode == 'train' else step_bench.inference_runner
  run, _, compiled = runner(config, batch)
  wall = sorted(step_bench.timed_steps(run, 2, 1))[0] * 1000
  with tempfile.TemporaryDirectory(prefix='deeplab_jax_profile_') as trace_dir:
    jax.profiler.start_trace(trace_dir)
    for _ in range(steps):
      run()
    jax.profiler.stop_trace()
    times = op_times(trace_dir, steps)
  return breakdown(times, instructions(compiled.as_text()), top), wall


def main(argv):
  del argv
  if FLAGS.config is None:
    sys.exit('error: --config is required, e.g. --config=configs/quickstart.py')
  import jax
  print(f'{FLAGS.mode} step, batch {FLAGS.batch}, {FLAGS.size}², {jax.default_backend()}: tracing '
        f'{FLAGS.steps} steps', flush=True)
  result, wall = profile(FLAGS.config, FLAGS.batch, FLAGS.size, FLAGS.steps, FLAGS.mode, FLAGS.top)
  print(format_breakdown(result, wall))


if __name__ == '__main__':
  define_flags()
  app.run(main)
