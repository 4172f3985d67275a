"""The run remembers its config: WORKDIR/config.json read back, and checked when training resumes."""
import json
import os

import pytest

from configs import quickstart
from deeplab_jax import checkpoint, run_config
from deeplab_jax.errors import UserError
from tests.conftest import run_main, tiny_config


def _flat(config) -> dict:
  return run_config._flat(json.loads(config.to_json()))


def test_stored_config_reads_back_as_written(tmp_path):
  config = tiny_config()
  config.eval.scales, config.data.eval_size = (0.5, 1.0), (97, 129)
  checkpoint.prepare_workdir(str(tmp_path), config)
  loaded = run_config.load(str(tmp_path))
  assert _flat(loaded) == _flat(config)
  assert loaded.eval.scales == (0.5, 1.0) and isinstance(loaded.data.class_names, tuple)
  assert isinstance(loaded.data.mean[0], float)
  loaded.data.eval_size = 65  # base.py's field types survive, so overrides take what base.py takes
  loaded.model.output_stride = 8
  with pytest.raises(TypeError):
    loaded.model.output_stride = 'eight'


def test_missing_or_broken_config_json_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match='config.json does not exist'):
    run_config.load(str(tmp_path))
  (tmp_path / 'config.json').write_text('{not json')
  with pytest.raises(UserError, match='Cannot read'):
    run_config.load(str(tmp_path))


def test_commands_without_config_get_the_stored_one():
  add = run_config.with_stored_config
  assert add(['main', '--mode=predict', '--workdir=runs/a'])[1].endswith('run_config.py:runs/a')
  assert add(['main', '--mode', 'eval', '--workdir', 'runs/a'])[1].endswith('run_config.py:runs/a')
  for argv in (['main', '--mode=predict', '--workdir=w', '--config=configs/v3_voc.py'],
               ['main', '--mode=train', '--workdir=w'], ['main', '--mode=export']):
    assert add(argv) == argv


def _trained(tmp_path, config) -> str:
  workdir = str(tmp_path / 'run')
  checkpoint.prepare_workdir(workdir, config)
  os.makedirs(os.path.join(workdir, 'checkpoints', '5'))
  return workdir


def test_resuming_under_another_config_lists_the_changes(tmp_path):
  config = tiny_config()
  workdir = _trained(tmp_path, config)
  changed = tiny_config()
  changed.train.num_steps, changed.data.root, changed.eval.flip = 99, '/elsewhere', True  # free to change
  run_config.check_resume(workdir, changed)
  changed.model.output_stride, changed.train.batch_size = 8, 4
  with pytest.raises(UserError, match='2 field') as error:
    run_config.check_resume(workdir, changed)
  assert 'model.output_stride: 16 -> 8' in str(error.value)
  assert 'train.batch_size: 8 -> 4' in str(error.value)
  assert '--accept_config_change' in str(error.value)
  run_config.check_resume(workdir, changed, accept=True, log=lambda _: None)
  with open(os.path.join(workdir, run_config.CHANGES_FILE)) as f:
    history = json.load(f)
  assert history[-1]['changed']['model.output_stride'] == {'stored': 16, 'now': 8}


def test_a_field_newer_than_the_run_is_no_change_at_its_default(tmp_path):
  """A run made before model.init_scheme existed resumes when the field holds base.py's default, and
  is stopped when the config sets another value."""
  config = tiny_config()
  workdir = _trained(tmp_path, config)
  stored = json.loads(open(run_config.path(workdir)).read())
  del stored['model']['init_scheme']
  with open(run_config.path(workdir), 'w') as f:
    json.dump(stored, f)
  run_config.check_resume(workdir, tiny_config())
  changed = tiny_config()
  changed.model.init_scheme = 'torchvision'
  with pytest.raises(UserError, match="model.init_scheme: '<absent>' -> 'torchvision'"):
    run_config.check_resume(workdir, changed)


def test_converted_weights_at_step_0_fine_tune_under_any_config(tmp_path):
  workdir = str(tmp_path / 'run')
  checkpoint.prepare_workdir(workdir, tiny_config())
  os.makedirs(os.path.join(workdir, 'checkpoints', '0'))
  changed = tiny_config()
  changed.model.output_stride = 8
  run_config.check_resume(workdir, changed)


def test_train_through_main_stops_on_a_changed_config(tmp_path):
  workdir = _trained(tmp_path, quickstart.get_config())
  result = run_main('--config=configs/quickstart.py', f'--workdir={workdir}',
                    '--config.model.output_stride=8', timeout=120)
  assert result.returncode == 2, result.stderr[-2000:]
  assert 'model.output_stride: 16 -> 8' in result.stderr and 'Traceback' not in result.stderr
  assert os.listdir(os.path.join(workdir, 'checkpoints')) == ['5']
