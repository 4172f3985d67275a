"""End to end through `python -m deeplab_jax.main`: resume after a kill, and clear errors for bad input."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, run_main, user_env

TINY = ['--config=configs/quickstart.py', '--config.data.crop_size=48', '--config.data.eval_size=96',
        '--config.model.resnet.width=8', '--config.model.aspp_features=16',
        '--config.train.batch_size=4', '--config.eval.batch_size=4',
        '--config.data.synthetic.num_train=16', '--config.data.synthetic.num_val=4',
        '--config.data.synthetic.min_size=60', '--config.data.synthetic.max_size=90']


def test_killed_run_resumes_from_its_checkpoint(tmp_path):
  workdir, data = str(tmp_path / 'run'), str(tmp_path / 'data')
  args = TINY + [f'--workdir={workdir}', f'--config.data.root={data}', '--config.train.num_steps=400',
                 '--config.train.checkpoint_every=5', '--config.train.log_every=5']
  proc = subprocess.Popen([sys.executable, '-m', 'deeplab_jax.main', *args], cwd=ROOT, env=user_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  checkpoints = os.path.join(workdir, 'checkpoints')
  deadline = time.time() + 300
  while time.time() < deadline:  # wait for a finished checkpoint past the first
    steps = [int(d) for d in (os.listdir(checkpoints) if os.path.isdir(checkpoints) else [])
             if d.isdigit()]
    if steps and max(steps) >= 10:
      break
    time.sleep(0.5)
  proc.send_signal(signal.SIGKILL)  # a crash: no chance to save anything more
  proc.wait()
  killed_at = max(int(d) for d in os.listdir(checkpoints) if d.isdigit())
  assert 10 <= killed_at < 400

  result = run_main(*args[:-3], '--config.train.num_steps=' + str(killed_at + 10),
                    '--config.train.checkpoint_every=5', '--config.train.log_every=5')
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Resuming from the checkpoint at step {killed_at}' in result.stdout
  assert f'step {killed_at + 5}/{killed_at + 10}' in result.stdout
  assert 'step 5/' not in result.stdout  # the counter continued, it did not restart
  with open(os.path.join(workdir, 'eval', f'val_step{killed_at + 10}.json')) as f:
    results = json.load(f)
  assert 0.0 <= results['miou'] <= 1.0 and set(results['per_class_iou']) >= {'background', 'star'}
  with open(os.path.join(workdir, 'config.json')) as f:
    assert json.load(f)['train']['num_steps'] == killed_at + 10


@pytest.mark.parametrize('args, message', [
    (['--config=configs/v3_voc.py', '--config.data.root=/nonexistent/VOC2012'],
     'Dataset folder /nonexistent/VOC2012 does not exist'),
    (['--config=configs/quickstart.py', '--config.model.no_such_key=1'], 'no_such_key'),
    (['--config=configs/quickstart.py', '--config.model.backbone=resnet7'], 'Unknown model.backbone'),
])
def test_bad_input_gives_one_clear_message(tmp_path, args, message):
  result = run_main(*args, f'--workdir={tmp_path}/w', timeout=120)
  assert result.returncode != 0
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


def test_unwritable_workdir(tmp_path):
  blocker = tmp_path / 'file'
  blocker.write_text('')
  result = run_main('--config=configs/quickstart.py', f'--workdir={blocker}/sub', timeout=120)
  assert result.returncode == 2
  assert f'Cannot write to workdir {blocker}/sub' in result.stderr
  assert 'Traceback' not in result.stderr
