"""deeplab_jax.benchmarks.step: the real entry point on a tiny model, without TensorFlow; MFU arithmetic."""
import json
import subprocess
import sys

import pytest

from deeplab_jax.benchmarks import step
from tests.conftest import ROOT, user_env

pytestmark = pytest.mark.xdist_group('benchmark_step')  # one worker builds this file's shared fixtures

# Runs the module as `python -m` would, then reports whether anything imported TensorFlow.
RUNNER = """
import runpy, sys
sys.argv = ['step'] + sys.argv[1:]
try:
  runpy.run_module('deeplab_jax.benchmarks.step', run_name='__main__')
except SystemExit as e:
  if e.code:
    raise
print('tensorflow imported:', 'tensorflow' in sys.modules)
"""


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('bench') / 'report.json')
  args = ['--config=configs/quickstart.py', '--batch=2', '--size=33', '--steps=2', '--warmup=1',
          '--config.model.resnet.width=8', '--config.model.resnet.blocks=(1, 1, 1, 1)',
          '--config.model.multi_grid=()', '--config.model.aspp_features=16', '--peak_tflops=1',
          f'--json={out}']
  env = dict(user_env(), JAX_PLATFORMS='cpu')
  proc = subprocess.run([sys.executable, '-c', RUNNER, *args], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    return proc.stdout, json.load(f)


def test_runs_without_tensorflow(tiny_run):
  stdout, _ = tiny_run
  assert 'tensorflow imported: False' in stdout


def test_reports_both_modes(tiny_run):
  stdout, report = tiny_run
  assert [r['mode'] for r in report['results']] == ['train', 'inference']
  for r in report['results']:
    assert len(r['step_times_s']) == 2 and r['images_per_s'] > 0 and r['compile_s'] > 0
    assert r['temp_bytes'] is not None and r['peak_bytes'] is None  # CPU keeps no peak statistic
    assert r['mfu'] == pytest.approx(r['model_tflop_per_step'] / r['median_s'] / 1.0)
  train, inference = report['results']
  assert train['model_tflop_per_step'] == pytest.approx(3 * inference['model_tflop_per_step'])
  assert 'n/a on CPU' in stdout


def test_macs_are_the_summary_modes(tiny_run):
  from configs import quickstart
  from deeplab_jax.models import summary
  from deeplab_jax.models.deeplab import build_model
  _, report = tiny_run
  config = quickstart.get_config()
  config.model.resnet.width, config.model.resnet.blocks, config.model.multi_grid = 8, (1, 1, 1, 1), ()
  config.model.aspp_features = 16
  model = build_model(config, train=False)
  assert report['gmacs_per_image'] == pytest.approx(summary.summarize(model, 33)['macs'] / 1e9)
  assert report['results'][1]['model_tflop_per_step'] == pytest.approx(
      2 * 2 * report['gmacs_per_image'] / 1e3)  # 2 FLOPs per MAC, batch 2


def test_result_mfu_by_hand():
  # 10 GMACs per image, batch 4, train: 2 * 3 * 10e9 * 4 = 240 GFLOP in 0.5 s = 0.48 TFLOP/s of 989.4.
  r = step.result('train', [0.4, 0.5, 0.9], 1.0, {}, 4, 10 * 10**9, 989.4e12)
  assert r['images_per_s'] == pytest.approx(8.0)
  assert r['mfu'] == pytest.approx(0.48 / 989.4)
  assert step.result('inference', [0.5], 1.0, {}, 4, 10**9, None)['mfu'] is None


def test_peak_table():
  assert step.peak_flops('NVIDIA H200', 'bfloat16') == pytest.approx(989.4e12)
  assert step.peak_flops('cpu', 'float32') is None
  assert step.peak_flops('cpu', 'float32', override_tflops=2.5) == pytest.approx(2.5e12)


def test_interleaved_times_alternate():
  calls = []
  times = step.interleaved_times({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')},
                                      steps=2, warmup=1)
  assert calls == ['a', 'b'] * 3 and [len(t) for t in times.values()] == [2, 2]


def test_interleaved_times_settle_before_each_timed_step():
  calls = []
  times = step.interleaved_times({'a': lambda: calls.append('a'), 'b': lambda: calls.append('b')},
                                 steps=2, warmup=1, settle=1)
  assert calls == ['a', 'b'] + ['a', 'a', 'b', 'b'] * 2 and [len(t) for t in times.values()] == [2, 2]
