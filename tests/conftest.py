"""Test setup: 8 host CPU devices and a compilation cache (set before JAX is imported), shared fixtures.

The suite builds the same small programs many times (each `jit` of a fresh closure, each subprocess
run of the entry point), so XLA's persistent cache, keyed by the program, is on for this session and
for the subprocesses it starts: equal programs compile once. One cache per pytest-xdist worker, removed
when the session ends.
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

# No LLVM optimisation of the compiled programs: the tests' programs are small and compile-bound
# (about a fifth less wall time for the config tests); subprocesses run as users do (user_env).
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8'
                           ' --xla_backend_optimization_level=0').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
_CACHE = tempfile.mkdtemp(prefix='deeplab_jax_xla_cache_')
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ['JAX_COMPILATION_CACHE_DIR'] = _CACHE
os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0.5'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pytest  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
  """Removes the cache at the end of the session too: pytest-xdist workers exit without atexit."""
  shutil.rmtree(_CACHE, ignore_errors=True)


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
  """A small synthetic VOC-layout dataset shared by the data tests."""
  from deeplab_jax.data import synthetic
  root = str(tmp_path_factory.mktemp('synthetic'))
  synthetic.generate(root, num_train=12, num_val=5, min_size=60, max_size=90, seed=3, log=lambda _: None)
  return root


def tiny_config(root: str = '/nonexistent'):
  """The quickstart config shrunk to a few-second model: ResNet (1,1,1,3) at width 8, crop 48."""
  from configs import quickstart
  config = quickstart.get_config()
  config.data.root = root
  config.data.crop_size = 48
  config.data.eval_size = 96
  config.model.resnet.width = 8
  config.model.aspp_features = 16
  config.train.batch_size = 8
  config.eval.batch_size = 8
  return config


def user_env() -> dict:
  """The environment for a subprocess run as a user runs it: one CPU device, unbuffered output."""
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  env.pop('XLA_FLAGS', None)  # drops this session's 8 host devices
  return env


def run_module(module: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  """`python -m MODULE ARGS` from the repository root in user_env(), output captured."""
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT, env=user_env(),
                        capture_output=True, text=True, timeout=timeout)


def run_main(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
  """`python -m deeplab_jax.main ARGS` (see run_module)."""
  return run_module('deeplab_jax.main', *args, timeout=timeout)


def execute_notebook(path: str, monkeypatch, **env: str) -> tuple[list[str], list[dict]]:
  """Runs the notebook at path top to bottom in a fresh kernel, in its own folder, with env set (the
  kernel inherits the environment; one CPU device, as a user has): (texts printed, every output)."""
  nbclient, nbformat = pytest.importorskip('nbclient'), pytest.importorskip('nbformat')
  for key, value in env.items():
    monkeypatch.setenv(key, value)
  monkeypatch.delenv('XLA_FLAGS', raising=False)
  notebook = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                          resources={'metadata': {'path': os.path.dirname(path)}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code' for o in cell.get('outputs', [])]
  return [o.get('text', '') for o in outputs], outputs


def final_eval(workdir) -> dict:
  """The eval JSON a run's last step wrote (WORKDIR/eval/val_step<num_steps>.json)."""
  with open(os.path.join(workdir, 'config.json')) as f:
    steps = json.load(f)['train']['num_steps']
  with open(os.path.join(workdir, 'eval', f'val_step{steps}.json')) as f:
    return json.load(f)


@pytest.fixture(scope='session')
def quickstart_run(tmp_path_factory):
  """The README's quickstart, trained once per session: (workdir, data root, stdout)."""
  base = tmp_path_factory.mktemp('quickstart')
  workdir, data_root = str(base / 'run'), str(base / 'data')
  result = run_main('--config=configs/quickstart.py', f'--workdir={workdir}',
                    f'--config.data.root={data_root}', timeout=1200)
  assert result.returncode == 0, result.stderr[-3000:]
  return workdir, data_root, result.stdout
