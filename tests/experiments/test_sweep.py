"""The sweep runner end to end (kill, resume, skip), its validation, and every experiment's sweep file."""
import glob
import os

import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.experiments import points as points_lib
from tests.conftest import ROOT
from tests.experiments.smoke_sweep import run_sweep, smoke_sweep, sweep_args

pytestmark = pytest.mark.xdist_group('sweep')  # one worker builds the session's sweep

SWEEP_FILES = sorted(os.path.relpath(p, ROOT)
                     for p in glob.glob(os.path.join(ROOT, 'experiments', '*', 'sweep.py')))


@pytest.fixture(scope='session')
def smoke(tmp_path_factory):
  return smoke_sweep(str(tmp_path_factory.getbasetemp() / 'smoke'))


def test_killed_point_resumes_and_the_sweep_finishes(smoke):
  out, killed_at = smoke['output'], smoke['killed_at']
  assert 10 <= killed_at < 60
  assert f'[sweep] point 1/2 pool: resumed from the checkpoint at step {killed_at}' in out
  assert f'Resuming from the checkpoint at step {killed_at}' in out  # main's own word for it
  assert f'step {killed_at + 10}/60' in out and 'step 10/60' not in out.split('point 2/2')[0]
  assert '[sweep] point 2/2 no_pool: started' in out
  for point in ('pool', 'no_pool'):
    assert os.path.isfile(os.path.join(smoke['workdir'], point, 'eval', 'val_step60.json'))


def test_rerun_skips_finished_points(smoke):
  checkpoints = sorted(glob.glob(os.path.join(smoke['workdir'], '*', 'checkpoints', '**'),
                                 recursive=True))
  before = {p: os.stat(p).st_mtime_ns for p in checkpoints}
  result = run_sweep(*sweep_args(smoke['workdir'], smoke['data']), timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '[sweep] point 1/2 pool: skipped' in result.stdout
  assert '[sweep] point 2/2 no_pool: skipped' in result.stdout
  assert 'Training' not in result.stdout + result.stderr
  after = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(
      smoke['workdir'], '*', 'checkpoints', '**'), recursive=True)}
  assert after == before


def test_unknown_override_fails_before_anything_runs(tmp_path):
  sweep = tmp_path / 'sweep.py'
  sweep.write_text("def get_sweep():\n  return {'good': {'model.output_stride': 32},\n"
                   "          'bad': {'model.outptu_stride': 8}}\n")
  workdir = tmp_path / 'w'
  result = run_sweep(*sweep_args(str(workdir), str(tmp_path / 'data'), str(sweep)), timeout=120)
  assert result.returncode == 2
  assert "Sweep point 'bad': unknown config field 'model.outptu_stride'" in result.stderr
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()  # not even the first, valid point started


@pytest.mark.parametrize('overrides, message', [
    ({'train.batch_size': 'sixteen'},
     "train.batch_size='sixteen' is a str, but the config field holds a int"),
    ({'model.image_pooling': 1}, 'model.image_pooling=1 is a int, but the config field holds a bool'),
    ({'model.multi_grid': 4}, 'model.multi_grid=4 is a int, but the config field holds a tuple'),
    ({'model.resnet': 3}, "'model.resnet' is a group of fields"),
    ({'_config': 'configs/v9_voc.py'}, "_config='configs/v9_voc.py' is not a config file"),
])
def test_bad_point_names_point_and_key(overrides, message, monkeypatch):
  monkeypatch.chdir(ROOT)
  with pytest.raises(UserError, match='Sweep point .p1.') as error:
    points_lib.resolve_point('p1', overrides, 'configs/quickstart.py', [])
  assert message in str(error.value)


def test_point_resolves_to_the_values_main_would_see(monkeypatch):
  monkeypatch.chdir(ROOT)
  point = points_lib.resolve_point(
      'p', {'_config': 'configs/v2_voc.py', 'model.multi_grid': (1, 2, 1), 'eval.scales': (0.5, 1.0),
            'eval.flip': True, 'train.base_lr': 1}, 'configs/v3_voc.py', ['--config.train.num_steps=7'])
  assert point.config_file == 'configs/v2_voc.py'
  assert point.config.model.head == 'aspp_l'  # from v2_voc, not the sweep's v3 base
  assert point.config.model.multi_grid == (1, 2, 1) and point.config.eval.scales == (0.5, 1.0)
  assert point.config.eval.flip is True and point.config.train.base_lr == 1.0
  assert point.config.train.num_steps == 7  # base overrides reach points with their own config file
  assert point.args[0] == '--config=configs/v2_voc.py'


def test_print_launch_gives_pod_and_per_host_commands(tmp_path):
  workdir = tmp_path / 'w'
  result = run_sweep(*sweep_args(str(workdir), 'data/x', 'experiments/output_stride/sweep.py',
                                 '--launch=print', '--tpu=my-pod'), timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  pods = [line for line in lines if line.startswith('gcloud compute tpus tpu-vm ssh my-pod')]
  hosts = [line for line in lines if line.startswith('# per host: ')]
  assert len(pods) == len(hosts) == 4 and all('--worker=all' in line for line in pods)
  assert 'jax.distributed' in result.stdout
  assert f'--workdir={workdir}/train8_eval8' in hosts[0]
  assert "--config.model.output_stride=8" in hosts[0] and '--config.data.root=data/x' in hosts[0]
  assert not workdir.exists()


@pytest.mark.parametrize('sweep_file', SWEEP_FILES)
def test_every_experiment_sweep_validates_against_its_base_config(sweep_file, monkeypatch):
  monkeypatch.chdir(ROOT)
  module = points_lib.load_sweep_module(sweep_file)
  base = points_lib.parse_config(module.BASE_CONFIG, [])
  missing = [group for group in getattr(module, 'REQUIRES', ()) if group not in base]
  if missing:
    pytest.skip(f'{sweep_file} needs config groups {missing} that are not merged yet')
  points = points_lib.resolve_sweep(sweep_file, module.BASE_CONFIG, [])
  assert points and set(module.PAPER) <= {p.name for p in points}
  readme = open(os.path.join(os.path.dirname(sweep_file), 'README.md')).read()
  for point in points:  # every point has a row in the README's results table
    assert f'| {point.name} |' in readme
