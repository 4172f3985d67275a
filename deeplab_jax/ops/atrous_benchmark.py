r"""Times the two atrous-conv implementations against each other at DeepLab's shapes.

    python -m deeplab_jax.ops.atrous_benchmark                    # every case, rates 1..36, batch 1
    python -m deeplab_jax.ops.atrous_benchmark --cases=aspp_os16 --rates=6,12,18 --batch=4

Each case is one 3x3 stride-1 conv at the shape DeepLab runs it for a 513x513 input: the ASPP branches
(2048 -> 256 channels at 33x33 for output stride 16, 65x65 for OS 8) and Xception's depthwise convs
(exit flow 1536 channels at 33x33, middle flow 728 at 65x65). Both implementations are jit-compiled
(compile time excluded), run once to warm up, then timed alternately, so the load of a shared machine
falls on both alike; the table gives medians and the ratio dilation / space_to_batch (> 1: space-to-batch
is faster). 'fwd+bwd' is the forward pass plus the VJP for the input and the kernel.
"""
import dataclasses
import math
import statistics
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
}

_CASES = flags.DEFINE_list('cases', list(CASES), f'Which of {list(CASES)}.')
_RATES = flags.DEFINE_list('rates', ['1', '2', '6', '12', '18', '24', '36'], 'Atrous rates.')
_BATCH = flags.DEFINE_integer('batch', 1, 'Batch size.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed runs per implementation after warm-up.')
_PASSES = flags.DEFINE_list('passes', ['fwd', 'fwd+bwd'], "Which of 'fwd', 'fwd+bwd'.")


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


def time_pair(case: Case, rate: int, backward: bool, repeats: int, batch: int):
  """Median seconds {impl: s} and compile seconds {impl: s}, the two impls timed alternately."""
  args = make_inputs(case, batch)
  fns, compile_s = {}, {}
  for impl in atrous.IMPLS:
    start = time.perf_counter()
    fns[impl] = make_fn(case, rate, impl, backward).lower(*args).compile()
    compile_s[impl] = time.perf_counter() - start
    jax.block_until_ready(fns[impl](*args))  # warm-up
  times = {impl: [] for impl in atrous.IMPLS}
  for _ in range(repeats):
    for impl in atrous.IMPLS:
      times[impl].append(_seconds(fns[impl], args))
  return {impl: statistics.median(t) for impl, t in times.items()}, compile_s


def suggest(ratios: dict[bool, list[float]]) -> dict[bool, str]:
  """Per depthwise flag, the impl with the better geometric-mean time over the rates > 1 measured."""
  return {depthwise: 'space_to_batch' if math.exp(np.mean(np.log(r))) > 1. else 'dilation'
          for depthwise, r in ratios.items() if r}


def main(argv):
  del argv
  rates = [int(r) for r in _RATES.value]
  print(f'backend {jax.default_backend()}, device {jax.devices()[0].device_kind}, batch {_BATCH.value},'
        f' {_REPEATS.value} timed runs each (median), float32, 3x3 stride 1')
  print('| case | input -> output | rate | pass | dilation ms | space_to_batch ms | dilation / s2b |'
        ' compile ms (dil / s2b) |')
  print('|---|---|---|---|---|---|---|---|')
  ratios = {False: [], True: []}
  for name in _CASES.value:
    case = CASES[name]
    shape = (f'{case.size}x{case.size}x{case.channels} -> '
             + ('depthwise' if case.depthwise else str(case.features)))
    for rate in rates:
      for pass_name in _PASSES.value:
        median, compile_s = time_pair(case, rate, pass_name == 'fwd+bwd', _REPEATS.value, _BATCH.value)
        ratio = median['dilation'] / median['space_to_batch']
        if rate > 1:
          ratios[case.depthwise].append(ratio)
        print(f'| {name} | {shape} | {rate} | {pass_name} | {1e3 * median["dilation"]:.1f} | '
              f'{1e3 * median["space_to_batch"]:.1f} | {ratio:.2f} | '
              f'{1e3 * compile_s["dilation"]:.0f} / {1e3 * compile_s["space_to_batch"]:.0f} |',
              flush=True)
  for depthwise, impl in suggest(ratios).items():
    gmean = math.exp(np.mean(np.log(ratios[depthwise])))
    print(f'{jax.default_backend()}, depthwise={depthwise}: geometric-mean dilation / s2b over rates > 1'
          f' = {gmean:.2f} -> faster: {impl}')


if __name__ == '__main__':
  app.run(main)
