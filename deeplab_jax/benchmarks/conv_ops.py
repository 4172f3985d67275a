r"""Single convs, forward + backward: the library conv, our fast lowering, and PyTorch, side by side.

    python -m deeplab_jax.benchmarks.conv_ops                      # every case, batch 8, 7 repeats
    python -m deeplab_jax.benchmarks.conv_ops --cases=dw3_480,pw_1024 --repeats=11
    python -m deeplab_jax.benchmarks.conv_ops --write_defaults     # what depthwise/pointwise 'auto' pick
    python -m deeplab_jax.benchmarks.conv_ops --cases=pw_1024_2048,aspp_2048_r12 --batch=4 --passes=fwd

Each case is one conv of the shapes DeepLab's backbones run at a 208x208 input (MobileNetV3's depthwise
convs at stride 16, a stride-2 depthwise conv, an atrous one, ResNet's 1x1 and 3x3 at OS 16, and
ResNet-50's stage-4 and ASPP convs at OS 8), NHWC float32. A measurement is the output and its VJP
(input and kernel gradients) of a fixed random cotangent, jitted (compile time excluded); with
--passes=fwd, the output alone (torch under no_grad), as inference runs it. The sides run one after
another in each round, so the load of a shared machine falls on all alike; the table gives medians,
each lowering's speed relative to torch's (> 1: faster than torch), and the largest difference between
the two lowerings' outputs.

'library' is lax.conv_general_dilated (feature_group_count for depthwise); 'fast' is ops.conv
(depthwise_taps, pointwise_dot, and atrous_taps for regular convs at rate > 1); 3x3 regular convs at
rate 1 have no second lowering. torch (when installed) is torch.nn.functional.conv2d on channels_last
tensors with its default threads. --write_defaults records, per kind (depthwise, pointwise), the
lowering with the better geometric-mean time over the cases measured into ops/atrous_defaults.json
('lowering'), with the command and date: what model.depthwise_impl='auto' and
model.pointwise_impl='auto' use on this platform.
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
from jax import lax
import jax.numpy as jnp
import numpy as np

from deeplab_jax import peers
from deeplab_jax.benchmarks import atrous as atrous_bench
from deeplab_jax.ops import atrous, conv

_DN = ('NHWC', 'HWIO', 'NHWC')


@dataclasses.dataclass(frozen=True)
class Case:
  """Input [batch, size, size, channels] through a k x k conv at `rate`, `stride` to `features`."""
  size: int
  channels: int
  features: int  # == channels for depthwise
  kernel: int
  rate: int = 1
  stride: int = 1
  depthwise: bool = False

  @property
  def kind(self) -> str:
    return 'depthwise' if self.depthwise else 'pointwise' if self.kernel == 1 else 'regular'


CASES = {
    'dw3_480': Case(13, 480, 480, 3, depthwise=True),
    'dw5_960_r2': Case(13, 960, 960, 5, rate=2, depthwise=True),
    'dw3_96_s2': Case(52, 96, 96, 3, stride=2, depthwise=True),
    'dw3_256_r4': Case(26, 256, 256, 3, rate=4, depthwise=True),
    'dw3_304': Case(52, 304, 304, 3, depthwise=True),  # v3+ decoder at 208², output stride 4
    'dw3_2048_r12': Case(13, 2048, 2048, 3, rate=12, depthwise=True),  # separable ASPP, OS 16 at 208²
    'dw3_2048_r36': Case(13, 2048, 2048, 3, rate=36, depthwise=True),
    'pw_1024': Case(26, 1024, 256, 1),
    'pw_256_s2': Case(26, 256, 512, 1, stride=2),
    'conv3_256': Case(26, 256, 256, 3),
    'conv3_256_r6': Case(26, 256, 256, 3, rate=6),
    # DeepLabV3-ResNet-50 at OS 8, 208²: stage 4's shortcut and bottleneck convs, its rate-2 3x3 (rate 4
    # in the last stage), and ASPP's rate-12 branch, where most taps read the image.
    'pw_1024_2048': Case(26, 1024, 2048, 1),
    'pw_512_2048': Case(26, 512, 2048, 1),
    'conv3_512_r2': Case(26, 512, 512, 3, rate=2),
    'conv3_512_r4': Case(26, 512, 512, 3, rate=4),
    'aspp_2048_r12': Case(26, 2048, 256, 3, rate=12),
}

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  flags.DEFINE_list('cases', list(CASES), f'Which of {list(CASES)}.')
  flags.DEFINE_integer('batch', 8, 'Batch size.')
  flags.DEFINE_integer('repeats', 7, 'Timed rounds after one warm-up round.')
  flags.DEFINE_enum('passes', 'fwd+bwd', ['fwd+bwd', 'fwd'], 'Output and VJP, or the output alone.')
  flags.DEFINE_bool('torch', True, 'Also time torch.nn.functional.conv2d when torch is installed.')
  flags.DEFINE_bool('write_defaults', False, 'Record the faster lowering per kind for this platform.')
  flags.DEFINE_string('defaults_file', atrous.DEFAULTS_PATH, 'Where --write_defaults writes.')


def library(case: Case):
  pad = [conv.same_padding(case.kernel, case.rate)] * 2
  groups = case.channels if case.depthwise else 1
  return lambda x, w: lax.conv_general_dilated(x, w, (case.stride,) * 2, pad, rhs_dilation=(case.rate,) * 2,
                                               dimension_numbers=_DN, feature_group_count=groups)


def fast(case: Case):
  if case.depthwise:
    return lambda x, w: conv.depthwise_taps(x, w, case.rate, case.stride)
  if case.kernel == 1:
    return lambda x, w: conv.pointwise_dot(x, w, case.stride)
  if case.rate > 1 and case.stride == 1:
    return lambda x, w: conv.atrous_taps(x, w, case.rate)
  return None


def jax_runner(fn, x, w, backward: bool = True):
  """(run and block, output) of the jitted fn(x, w): the output and its VJP of a fixed cotangent, as a
  layer inside a network computes them (a scalar loss fused onto the conv would time XLA's fusion of
  that reduction instead), or with backward=False the output alone."""
  probe = jax.random.normal(jax.random.key(2), jax.eval_shape(fn, x, w).shape)

  def forward_backward(x, w):
    y, vjp = jax.vjp(fn, x, w)
    return y, vjp(probe)

  forward = jax.jit(fn)
  run = jax.jit(forward_backward) if backward else forward
  jax.block_until_ready(run(x, w))
  return (lambda: jax.block_until_ready(run(x, w))), forward(x, w)


def torch_runner(case: Case, x: np.ndarray, w: np.ndarray, backward: bool = True):
  """torch's conv2d forward + backward (or, backward=False, forward under no_grad) on channels_last
  copies of x and w, or None without torch."""
  try:
    torch = peers.import_torch()
  except ImportError:
    return None
  groups = case.channels if case.depthwise else 1
  tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
  tx.requires_grad_(True)
  tw = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))  # HWIO -> OIHW
  tw = tw.contiguous(memory_format=torch.channels_last).requires_grad_(True)
  pad = case.rate * (case.kernel - 1) // 2

  def conv2d():
    return torch.nn.functional.conv2d(tx, tw, stride=case.stride, padding=pad, dilation=case.rate,
                                      groups=groups)

  def run():
    if not backward:
      with torch.no_grad():
        conv2d()
      return
    conv2d().sum().backward()
    tx.grad = tw.grad = None

  run()
  return run


def measure(name: str, case: Case, batch: int, repeats: int, with_torch: bool,
            backward: bool = True) -> dict:
  """Median seconds per side and the lowerings' largest output difference, for one case (forward +
  backward, or with backward=False the forward alone)."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((batch, case.size, case.size, case.channels), dtype=np.float32)
  w_shape = (case.kernel, case.kernel, 1 if case.depthwise else case.channels, case.features)
  w = rng.standard_normal(w_shape, dtype=np.float32) / math.sqrt(case.kernel ** 2 * w_shape[2])
  runs, outputs = {}, {}
  for side, make in (('library', library), ('fast', fast)):
    if make(case) is not None:
      runs[side], outputs[side] = jax_runner(make(case), jnp.asarray(x), jnp.asarray(w), backward)
  theirs = torch_runner(case, x, w, backward) if with_torch else None
  if theirs is not None:
    runs['torch'] = theirs
  times = {side: [] for side in runs}
  for _ in range(repeats):
    for side, run in runs.items():
      start = time.perf_counter()
      run()
      times[side].append(time.perf_counter() - start)
  error = None
  if 'fast' in outputs:
    reference = np.asarray(outputs['library'])
    error = float(np.abs(np.asarray(outputs['fast']) - reference).max() / np.abs(reference).max())
  return {'case': name, 'kind': case.kind, 'medians': {s: statistics.median(t) for s, t in times.items()},
          'max_relative_difference': error}


def format_row(row: dict) -> str:
  m = row['medians']
  cells = [f"{row['case']:>12}"] + [f"{side} {m[side] * 1e3:8.1f} ms" if side in m else f"{side} {'-':>8}   "
                                     for side in ('library', 'fast', 'torch')]
  if 'torch' in m:
    cells += [f"vs torch: library {m['torch'] / m['library']:5.2f}x"]
    if 'fast' in m:
      cells += [f"fast {m['torch'] / m['fast']:5.2f}x"]
  if row['max_relative_difference'] is not None:
    cells += [f"diff {row['max_relative_difference']:.1e}"]
  return '  '.join(cells)


def winners(rows: list[dict]) -> dict[str, str]:
  """Per kind with two lowerings measured: the one with the better geometric-mean time."""
  names = {'depthwise': ('grouped', 'taps'), 'pointwise': ('conv', 'dot')}
  choices = {}
  for kind, (library_name, fast_name) in names.items():
    ratios = [r['medians']['library'] / r['medians']['fast'] for r in rows
              if r['kind'] == kind and 'fast' in r['medians']]
    if ratios:
      mean = atrous_bench.geometric_mean(ratios)
      choices[kind] = fast_name if mean > 1 else library_name
      choices[f'{kind}_library_over_fast'] = round(mean, 2)
  return choices


def main(argv):
  del argv
  unknown = set(FLAGS.cases) - set(CASES)
  if unknown:
    sys.exit(f'error: --cases: unknown {sorted(unknown)}; known: {", ".join(CASES)}')
  if FLAGS.write_defaults and FLAGS.passes != 'fwd+bwd':
    sys.exit('error: --write_defaults picks the lowerings training runs: it needs --passes=fwd+bwd')
  print(f'jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), float32, '
        f'batch {FLAGS.batch}, {"forward + backward" if FLAGS.passes == "fwd+bwd" else "forward"}, '
        f'medians of {FLAGS.repeats}', flush=True)
  rows = []
  for name in FLAGS.cases:
    rows.append(measure(name, CASES[name], FLAGS.batch, FLAGS.repeats, FLAGS.torch,
                        FLAGS.passes == 'fwd+bwd'))
    print(format_row(rows[-1]), flush=True)
  choices = winners(rows)
  print(f'faster lowering (geometric mean of library / fast time): {choices}')
  if FLAGS.write_defaults:
    kinds = {k: v for k, v in choices.items() if k in atrous.LOWERINGS}
    if set(kinds) != set(atrous.LOWERINGS):
      sys.exit('error: --write_defaults needs a depthwise and a pointwise case')
    info = {'date': datetime.date.today().isoformat(),
            'command': 'python -m deeplab_jax.benchmarks.conv_ops ' + shlex.join(sys.argv[1:]),
            **{k: v for k, v in choices.items() if k not in kinds}}
    entry = atrous.write_lowering(jax.default_backend(), kinds, info, FLAGS.defaults_file)
    print(f'wrote {jax.default_backend()} lowering {entry["lowering"]} to {FLAGS.defaults_file}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
