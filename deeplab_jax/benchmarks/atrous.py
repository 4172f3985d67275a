r"""Times the atrous-conv implementations against each other at DeepLab's shapes.

    python -m deeplab_jax.benchmarks.atrous                    # every case, rates 1..36, batch 1
    python -m deeplab_jax.benchmarks.atrous --cases=aspp_os16 --rates=6,12,18 --batch=4
    python -m deeplab_jax.benchmarks.atrous --repeats=3 --write_defaults  # what impl='auto' picks here

Each case is one 3x3 stride-1 conv at the shape DeepLab runs it for a 513x513 input: the ASPP branches
(2048 -> 256 channels at 33x33 for output stride 16, 65x65 for OS 8) and Xception's depthwise convs
(exit flow 1536 channels at 33x33, middle flow 728 at 65x65), and MobileNetV3-Large's ASPP at a 208x208
input (960 -> 256 at 13x13). The implementations are jit-compiled (compile time excluded), run once to
warm up, then timed in turn, so the load of a shared machine falls on all alike; the table gives
medians, each impl's time over dilation's (< 1: faster than dilation), and the largest difference from
dilation's outputs relative to the largest output.
'fwd+bwd' is the forward pass plus the VJP for the input and the kernel.

The winner per conv kind (regular, depthwise) is the impl with the better geometric-mean time over the
rates > 1 measured; --write_defaults records both for this platform in ops/atrous_defaults.json, with
the command and date, which is what `atrous.default_impl` (impl='auto') reads.
"""
import dataclasses
import datetime
import math
import shlex
import statistics
import sys
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from deeplab_jax.ops import atrous


@dataclasses.dataclass(frozen=True)
class Case:
  """One conv shape: input [B, size, size, channels], 3x3 kernel to `features` (or depthwise)."""
  size: int
  channels: int
  features: int
  depthwise: bool


CASES = {
    'aspp_os16': Case(33, 2048, 256, False),
    'aspp_os8': Case(65, 2048, 256, False),
    'xception_dw_os16': Case(33, 1536, 1536, True),
    'xception_dw_os8': Case(65, 728, 728, True),
    'aspp_mnv3_208': Case(13, 960, 256, False),
}

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  flags.DEFINE_list('cases', list(CASES), f'Which of {list(CASES)}.')
  flags.DEFINE_list('rates', ['1', '2', '6', '12', '18', '24', '36'], 'Atrous rates.')
  flags.DEFINE_integer('batch', 1, 'Batch size.')
  flags.DEFINE_integer('repeats', 5, 'Timed runs per implementation after warm-up.')
  flags.DEFINE_list('passes', ['fwd', 'fwd+bwd'], "Which of 'fwd', 'fwd+bwd'.")
  flags.DEFINE_bool('write_defaults', False, "Record the winners for this platform (impl='auto') in "
                    '--defaults_file; needs a regular and a depthwise case and a rate > 1.')
  flags.DEFINE_string('defaults_file', atrous.DEFAULTS_PATH, 'The table --write_defaults updates.')


def make_fn(case: Case, rate: int, impl: str, backward: bool):
  """A jitted conv (x, kernel, cotangent) -> output, or -> (d_x, d_kernel) when `backward`."""
  groups = case.channels if case.depthwise else 1

  def conv(x, kernel):
    return atrous.atrous_conv(x, kernel, rate, feature_group_count=groups, impl=impl)

  if not backward:
    return jax.jit(lambda x, kernel, cotangent: conv(x, kernel))
  # The cotangent is an input (not ones) so XLA cannot fold the backward conv away.
  return jax.jit(lambda x, kernel, cotangent: jax.vjp(conv, x, kernel)[1](cotangent))


def make_inputs(case: Case, batch: int):
  """x [B, S, S, C], kernel [3, 3, C | 1, F], cotangent [B, S, S, F], float32."""
  rng = np.random.default_rng(0)
  kernel_in = 1 if case.depthwise else case.channels
  shapes = [(batch, case.size, case.size, case.channels), (3, 3, kernel_in, case.features),
            (batch, case.size, case.size, case.features)]
  return [jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in shapes]


def _seconds(fn, args) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def max_relative_difference(a, b) -> float:
  """max |a - b| over the largest |a|, over all leaves (outputs, or input and kernel gradients)."""
  pairs = list(zip(jax.tree.leaves(a), jax.tree.leaves(b)))
  scale = max(float(jnp.abs(x).max()) for x, _ in pairs)
  return max(float(jnp.abs(x - y).max()) for x, y in pairs) / max(scale, 1e-30)


def time_impls(case: Case, rate: int, backward: bool, repeats: int, batch: int):
  """Median seconds {impl: s}, compile seconds {impl: s} and the largest max relative difference of an
  impl from dilation.

  The impls are timed in turn, so the load of a shared machine falls on all alike.
  """
  args = make_inputs(case, batch)
  fns, compile_s, outputs = {}, {}, {}
  for impl in atrous.IMPLS:
    start = time.perf_counter()
    fns[impl] = make_fn(case, rate, impl, backward).lower(*args).compile()
    compile_s[impl] = time.perf_counter() - start
    outputs[impl] = jax.block_until_ready(fns[impl](*args))  # warm-up
  times = {impl: [] for impl in atrous.IMPLS}
  for _ in range(repeats):
    for impl in atrous.IMPLS:
      times[impl].append(_seconds(fns[impl], args))
  difference = max(max_relative_difference(outputs['dilation'], outputs[impl])
                   for impl in atrous.IMPLS if impl != 'dilation')
  return {impl: statistics.median(t) for impl, t in times.items()}, compile_s, difference


def measure(cases: dict[str, Case], rates: list[int], passes: list[str], repeats: int, batch: int,
            log=print) -> list[dict]:
  """Every case x rate x pass, each logged as a markdown table row when done; returns the rows."""
  others = [impl for impl in atrous.IMPLS if impl != 'dilation']
  log('| case | input -> output | rate | pass | ' + ' | '.join(f'{impl} ms' for impl in atrous.IMPLS)
      + ' | ' + ' | '.join(f'{impl} / dilation' for impl in others) + ' | max rel. diff | compile ms ('
      + ' / '.join(atrous.IMPLS) + ') |')
  log('|---|---|---|---|' + '---|' * (len(atrous.IMPLS) + len(others) + 2))
  rows = []
  for name, case in cases.items():
    shape = (f'{case.size}x{case.size}x{case.channels} -> '
             + ('depthwise' if case.depthwise else str(case.features)))
    for rate in rates:
      for pass_name in passes:
        median, compile_s, difference = time_impls(case, rate, pass_name == 'fwd+bwd', repeats, batch)
        over = {impl: median[impl] / median['dilation'] for impl in others}
        rows.append({'case': name, 'depthwise': case.depthwise, 'rate': rate, 'pass': pass_name,
                     'median_s': median, 'compile_s': compile_s, 'max_relative_difference': difference,
                     'over_dilation': over})
        log(f'| {name} | {shape} | {rate} | {pass_name} | '
            + ' | '.join(f'{1e3 * median[impl]:.1f}' for impl in atrous.IMPLS) + ' | '
            + ' | '.join(f'{over[impl]:.2f}' for impl in others) + f' | {difference:.1e} | '
            + ' / '.join(f'{1e3 * compile_s[impl]:.0f}' for impl in atrous.IMPLS) + ' |', flush=True)
  return rows


def geometric_mean(values: list[float]) -> float:
  return math.exp(np.mean(np.log(values)))


def winners(rows: list[dict]) -> dict[bool, tuple[str, dict[str, float]]]:
  """Per depthwise flag: (the impl with the best geometric-mean time over rates > 1, {impl: that mean
  of impl / dilation}); flags without such a row are left out."""
  found = {}
  for depthwise in (False, True):
    kept = [row['over_dilation'] for row in rows if row['rate'] > 1 and row['depthwise'] == depthwise]
    if kept:
      means = {'dilation': 1.0, **{impl: geometric_mean([r[impl] for r in kept]) for impl in kept[0]}}
      found[depthwise] = (min(means, key=means.get), means)
  return found


def record_defaults(found: dict[bool, tuple[str, float]], command: str, path: str) -> dict:
  """Writes `found` (see winners) as this platform's entry of the defaults table at `path`."""
  if set(found) != {False, True}:
    sys.exit('error: --write_defaults needs a regular and a depthwise case, each at a rate > 1 '
             f'(measured: {sorted("depthwise" if d else "regular" for d in found)})')
  device = jax.devices()[0]
  info = {'date': datetime.date.today().isoformat(),
          'device': f'{jax.default_backend()} {device.device_kind} x{jax.device_count()}, float32',
          'measured': [{'command': command, 'over_dilation': {
              'depthwise' if d else 'regular': {impl: round(m, 3) for impl, m in means.items()}
              for d, (_, means) in sorted(found.items())}}]}
  return atrous.write_defaults(jax.default_backend(), {d: impl for d, (impl, _) in found.items()}, info,
                               path)


def main(argv):
  del argv
  unknown = set(FLAGS.cases) - set(CASES)
  if unknown:
    sys.exit(f'error: --cases: unknown {sorted(unknown)}; use any of {list(CASES)}')
  print(f'backend {jax.default_backend()}, device {jax.devices()[0].device_kind}, batch {FLAGS.batch},'
        f' {FLAGS.repeats} timed runs each (median), float32, 3x3 stride 1')
  rows = measure({name: CASES[name] for name in FLAGS.cases}, [int(r) for r in FLAGS.rates], FLAGS.passes,
                 FLAGS.repeats, FLAGS.batch)
  found = winners(rows)
  for depthwise, (impl, means) in found.items():
    print(f'{jax.default_backend()}, depthwise={depthwise}: geometric-mean time / dilation over rates > 1'
          f' = {", ".join(f"{i} {m:.2f}" for i, m in means.items())} -> fastest: {impl}')
  if FLAGS.write_defaults:
    command = shlex.join(['python', '-m', 'deeplab_jax.benchmarks.atrous', *sys.argv[1:]])
    entry = record_defaults(found, command, FLAGS.defaults_file)
    print(f'wrote {jax.default_backend()}: regular {entry["regular"]}, depthwise {entry["depthwise"]} '
          f'to {FLAGS.defaults_file}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
