r"""Times the JAX dense CRF against pydensecrf2 on the same inputs, and measures their agreement.

    python -m deeplab_jax.benchmarks.crf                       # 513x513, 21 classes, 10 its
    python -m deeplab_jax.benchmarks.crf --colour_noise=8 --repeats=7

The scene is synthetic (coloured shapes plus Gaussian colour noise; logits from a noisy copy of the
label map), so the run needs no data. Compile time is reported apart from the steady-state median.
Fast-vs-exact agreement is measured on a smaller crop (--exact_size), since the exact kernel is O(N²).
"""
import dataclasses
import os
import statistics
import time

from absl import app, flags
import jax
import jax.numpy as jnp
import numpy as np

from deeplab_jax.ops import crf

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  flags.DEFINE_integer('size', 513, 'Image height and width.')
  flags.DEFINE_integer('classes', 21, 'Number of labels.')
  flags.DEFINE_integer('iterations', 10, 'Mean-field iterations.')
  flags.DEFINE_integer('repeats', 5, 'Timed runs after warm-up; the median is reported.')
  flags.DEFINE_float('colour_noise', 4., 'Std of the colour noise, 0..255 units.')
  flags.DEFINE_integer('exact_size', 80, 'Side of the fast-vs-exact check; 0 skips it.')
  flags.DEFINE_integer('seed', 0, 'Scene seed.')
  flags.DEFINE_bool('profile', False, 'Also split the JAX time into setup and iterations, and time each '
                    'stage apart.')


def make_scene(size: int, classes: int, colour_noise: float, seed: int):
  """Shapes image and noisy logits: logits [H, W, C] float32, image [H, W, 3] uint8."""
  rng = np.random.default_rng(seed)
  rows, cols = np.mgrid[:size, :size]
  labels = np.zeros((size, size), int)
  shapes = [((rows - 0.4 * size) ** 2 + (cols - 0.5 * size) ** 2 < (0.25 * size) ** 2),
            (rows > 0.6 * size) & (rows < 0.9 * size) & (cols > 0.1 * size) & (cols < 0.6 * size),
            (rows < 0.25 * size) & (cols > 0.7 * size),
            np.abs(rows - cols - 0.3 * size) < 0.05 * size]
  for label, mask in enumerate(shapes, start=1):
    labels[mask] = label % classes
  palette = rng.uniform(20, 235, (classes, 3))
  image = np.clip(palette[labels] + rng.normal(0, colour_noise, (size, size, 3)), 0, 255)
  noisy = np.where(rng.random((size, size)) < 0.3, rng.integers(0, classes, (size, size)), labels)
  logits = rng.normal(0, 1., (size, size, classes)) + 2. * np.eye(classes)[noisy]
  return logits.astype(np.float32), np.ascontiguousarray(image.round().astype(np.uint8))


def pydensecrf_inference(logits: np.ndarray, image: np.ndarray, params: crf.CRFParams):
  """DeepLab's pydensecrf call on logits [H, W, C], image [H, W, 3] uint8: probabilities [H, W, C]."""
  import pydensecrf.densecrf as densecrf  # pylint: disable=g-import-not-at-top
  from pydensecrf.utils import unary_from_softmax  # pylint: disable=g-import-not-at-top
  height, width, classes = logits.shape
  prob = np.exp(logits - logits.max(-1, keepdims=True))
  prob /= prob.sum(-1, keepdims=True)
  model = densecrf.DenseCRF2D(width, height, classes)
  model.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(prob.transpose(2, 0, 1))))
  model.addPairwiseGaussian(sxy=params.theta_gamma, compat=params.w2)
  model.addPairwiseBilateral(sxy=params.theta_alpha, srgb=params.theta_beta, rgbim=image,
                             compat=params.w1)
  q = np.array(model.inference(params.iterations))
  return q.reshape(classes, height, width).transpose(1, 2, 0)


def _median_seconds(fn, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _interleaved_medians(fns, repeats: int) -> list[float]:
  """Median seconds of each fn, run in turns so that all see the same (shared, varying) machine load."""
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, spent in zip(fns, times):
      start = time.perf_counter()
      fn()
      spent.append(time.perf_counter() - start)
  return [statistics.median(t) for t in times]


def _agreement(a: np.ndarray, b: np.ndarray) -> str:
  labels = 100. * np.mean(a.argmax(-1) == b.argmax(-1))
  return f'labels {labels:.3f}%, max |dQ| {np.abs(a - b).max():.2e}, mean |dQ| {np.abs(a - b).mean():.2e}'


def benchmark_speed(params: crf.CRFParams) -> None:
  """JAX (jit) vs pydensecrf2 on one scene; prints times, ratio and agreement."""
  logits, image = make_scene(FLAGS.size, FLAGS.classes, FLAGS.colour_noise, FLAGS.seed)
  args = (jnp.asarray(logits)[None], jnp.asarray(image)[None])
  start = time.perf_counter()
  compiled = crf.jit_dense_crf().lower(*args, params).compile()
  compile_s = time.perf_counter() - start
  run_jax = lambda: np.asarray(compiled(*args))[0]
  ours = run_jax()  # warm-up
  points = jax.jit(crf.splat_points)(crf.bilateral_features(args[1][0], params.theta_alpha,
                                                            params.theta_beta))
  print(f'scene {FLAGS.size}x{FLAGS.size}, {FLAGS.classes} classes, {params.iterations} '
        f'iterations, colour noise {FLAGS.colour_noise}; bilateral lattice points '
        f'{int(points.num_points)} of {points.keys.shape[1]} possible; backend {jax.default_backend()}')
  try:
    peer = pydensecrf_inference(logits, image, params)
  except ImportError:
    jax_s = _median_seconds(run_jax, FLAGS.repeats)
    print(f'jax   {params.method}: median {jax_s:.3f} s over {FLAGS.repeats} runs '
          f'(compile {compile_s:.1f} s, apart)')
    print('pydensecrf2 not installed: peer timing skipped (bash shared/peers/setup.sh VENV)')
    return
  jax_s, peer_s = _interleaved_medians(
      [run_jax, lambda: pydensecrf_inference(logits, image, params)], FLAGS.repeats)
  print(f'jax   {params.method}: median {jax_s:.3f} s over {FLAGS.repeats} runs '
        f'(compile {compile_s:.1f} s, apart)')
  print(f'pydensecrf2: median {peer_s:.3f} s over {FLAGS.repeats} runs (interleaved with jax)')
  print(f'ratio jax / pydensecrf2 = {jax_s / peer_s:.2f} (load average {os.getloadavg()[0]:.1f} '
        f'on {os.cpu_count()} CPUs)')
  print(f'agreement with pydensecrf2: {_agreement(ours, peer)}')


def check_exact(params: crf.CRFParams) -> None:
  """Permutohedral vs exact kernels on a smaller scene; prints agreement."""
  logits, image = make_scene(FLAGS.exact_size, FLAGS.classes, FLAGS.colour_noise, FLAGS.seed)
  args = (jnp.asarray(logits)[None], jnp.asarray(image)[None])
  run = crf.jit_dense_crf()
  fast = np.asarray(run(*args, params))[0]
  exact = np.asarray(run(*args, crf.CRFParams(**{**params.__dict__, 'method': 'exact'})))[0]
  print(f'permutohedral vs exact at {FLAGS.exact_size}x{FLAGS.exact_size}: '
        f'{_agreement(fast, exact)}')


def profile_iterations(params: crf.CRFParams) -> None:
  """Setup (lattices, normalisers, unary) and per-iteration time of the whole jitted CRF.

  From runs with 1 and N iterations (with 0, XLA would drop the unused lattices).
  """
  logits, image = make_scene(FLAGS.size, FLAGS.classes, FLAGS.colour_noise, FLAGS.seed)
  args = (jnp.asarray(logits)[None], jnp.asarray(image)[None])
  counts = (1, max(params.iterations, 2))
  runs = []
  for count in counts:
    compiled = crf.jit_dense_crf().lower(*args, dataclasses.replace(params, iterations=count)).compile()
    runs.append(lambda compiled=compiled: jax.block_until_ready(compiled(*args)))
    runs[-1]()
  one, many = _interleaved_medians(runs, FLAGS.repeats)
  per_iteration = (many - one) / (counts[1] - counts[0])
  print(f'  whole CRF: {1000 * one:.0f} ms with 1 iteration, {1000 * many:.0f} ms with {counts[1]} -> '
        f'setup {1000 * (one - per_iteration):.0f} ms + {1000 * per_iteration:.1f} ms per iteration')


def profile_stages(params: crf.CRFParams) -> None:
  """Median time of each stage of the permutohedral CRF on the benchmark scene (jit, warm).

  Each stage is its own program here, so its time includes first touches of its temporaries
  (page faults) and misses fusions across stages; profile_iterations times the real program.
  """
  logits, image = make_scene(FLAGS.size, FLAGS.classes, FLAGS.colour_noise, FLAGS.seed)
  feats = crf.bilateral_features(jnp.asarray(image), params.theta_alpha, params.theta_beta)
  points = jax.jit(crf.splat_points)(feats)
  capacity = next(c for c in crf._capacities(points.keys.shape[1])  # pylint: disable=protected-access
                  if c >= int(points.num_points))
  bilateral = jax.jit(crf.blur_structure, static_argnums=1)(points, capacity)
  smooth = crf._gaussian_lattice(FLAGS.size, FLAGS.size, params.theta_gamma)  # pylint: disable=protected-access
  values = jnp.asarray(logits.reshape(-1, FLAGS.classes))
  stages = {
      'bilateral splat_points (once)': (crf.splat_points, feats),
      f'bilateral blur_structure, capacity {capacity} (once)':
          (lambda p: crf.blur_structure(p, capacity), points),
      'bilateral lattice_filter [N, C] (per iteration)': (crf.lattice_filter, bilateral, values),
      'gaussian lattice_filter [N, C] (per iteration)': (crf.lattice_filter, smooth, values),
      'softmax [N, C] (per iteration)': (lambda v: jax.nn.softmax(v, -1), values),
  }
  for name, (fn, *args) in stages.items():
    fn = jax.jit(fn, compiler_options=crf.compiler_options())
    jax.block_until_ready(fn(*args))
    seconds = _median_seconds(lambda: jax.block_until_ready(fn(*args)), FLAGS.repeats)
    print(f'    {name}: {1000 * seconds:.1f} ms')


def main(argv):
  del argv
  params = crf.CRFParams(iterations=FLAGS.iterations)
  benchmark_speed(params)
  if FLAGS.profile:
    profile_iterations(params)
    print('  stages, each jitted alone:')
    profile_stages(params)
  if FLAGS.exact_size:
    check_exact(params)


if __name__ == '__main__':
  define_flags()
  app.run(main)
