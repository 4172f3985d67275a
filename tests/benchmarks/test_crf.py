"""deeplab_jax.benchmarks.crf on a tiny scene: timings, the profile, and agreement with the references."""
import importlib.util
import re

import pytest

from tests.conftest import run_module

pytestmark = pytest.mark.xdist_group('benchmark_crf')  # one worker builds this file's shared fixtures


@pytest.fixture(scope='module')
def output():
  result = run_module('deeplab_jax.benchmarks.crf', '--size=32', '--classes=3', '--iterations=2',
                      '--repeats=2', '--exact_size=16', '--profile', timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


def _agreement(line: str) -> tuple[float, float]:
  """(labels %, max |dQ|) of an agreement line."""
  match = re.search(r'labels ([\d.]+)%, max \|dQ\| ([\d.e+-]+)', line)
  assert match, line
  return float(match.group(1)), float(match.group(2))


def _line(output: str, start: str) -> str:
  return next(line for line in output.splitlines() if line.strip().startswith(start))


def test_jax_timing_and_profile(output):
  assert _line(output, 'scene 32x32, 3 classes, 2 iterations').endswith('backend cpu')
  timing = re.search(r'jax   permutohedral: median ([\d.]+) s over 2 runs \(compile ([\d.]+) s', output)
  assert timing and float(timing.group(2)) > 0
  assert re.search(r'whole CRF: \d+ ms with 1 iteration, \d+ ms with 2 -> setup', output)
  stages = [line for line in output.splitlines() if line.startswith('    ') and line.endswith(' ms')]
  assert len(stages) == 5  # splat, blur structure, two lattice filters, softmax
  if importlib.util.find_spec('pydensecrf') is None:
    assert 'pydensecrf2 not installed: peer timing skipped' in output


def test_permutohedral_is_close_to_the_exact_kernel(output):
  labels, _ = _agreement(_line(output, 'permutohedral vs exact at 16x16:'))
  assert labels > 90


def test_agrees_with_pydensecrf(output):
  pytest.importorskip('pydensecrf.densecrf')
  assert re.search(r'pydensecrf2: median [\d.]+ s over 2 runs', output)
  assert re.search(r'ratio jax / pydensecrf2 = [\d.]+', output)
  labels, max_dq = _agreement(_line(output, 'agreement with pydensecrf2:'))
  assert labels > 99.9 and max_dq < 1e-3
