"""The smoke sweep, run once per test session and shared by test_sweep and test_notebooks.

Running it costs two tiny trainings; to test resuming at no extra cost, the first run is killed
(SIGKILL, its whole process group) after the first point's first checkpoint, and the second run
finishes the sweep.
"""
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, user_env

SMOKE = 'experiments/smoke/sweep.py'
_RUNS = {}


def sweep_args(workdir: str, data: str, sweep: str = SMOKE, *extra: str) -> list[str]:
  return [sys.executable, '-m', 'deeplab_jax.experiments.sweep', '--config=configs/quickstart.py',
          f'--sweep={sweep}', f'--workdir={workdir}', f'--config.data.root={data}', *extra]


def run_sweep(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  return subprocess.run(list(args), cwd=ROOT, env=user_env(), capture_output=True, text=True, timeout=timeout)


def checkpoint_steps(run_dir: str) -> list[int]:
  directory = os.path.join(run_dir, 'checkpoints')
  return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(directory) else []


def _kill_after_first_checkpoint(args: list[str], run_dir: str, log_path: str) -> int:
  """Starts the sweep, SIGKILLs its process group once run_dir has a checkpoint; returns its step."""
  with open(log_path, 'w') as log:
    proc = subprocess.Popen(args, cwd=ROOT, env=user_env(), stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: the point's subprocess dies too
    deadline = time.time() + 300
    while time.time() < deadline and not checkpoint_steps(run_dir) and proc.poll() is None:
      time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  steps = checkpoint_steps(run_dir)
  assert steps, open(log_path).read()[-3000:]
  return steps[-1]


def smoke_sweep(base_dir: str) -> dict:
  """{'workdir', 'killed_at', 'output'} of the smoke sweep, killed once and then finished."""
  if base_dir not in _RUNS:
    os.makedirs(base_dir, exist_ok=True)
    workdir, data = os.path.join(base_dir, 'sweep'), os.path.join(base_dir, 'data')
    args = sweep_args(workdir, data)
    killed_at = _kill_after_first_checkpoint(args, os.path.join(workdir, 'pool'),
                                             os.path.join(base_dir, 'killed.log'))
    result = run_sweep(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    _RUNS[base_dir] = {'workdir': workdir, 'data': data, 'killed_at': killed_at,
                       'output': result.stdout}
  return _RUNS[base_dir]
