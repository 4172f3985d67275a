"""Faults at pod scale: damaged and unfinished checkpoints, a full disk, data going bad mid-run, an
evaluation that fails, and a preemption that reaches one process of two."""
import errno
import glob
import json
import os
import shutil
import signal
import subprocess
import sys

from etils.epath import backend as epath_backend
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax import checkpoint
from deeplab_jax.checkpoint import Checkpointer
from deeplab_jax.data import synthetic
from deeplab_jax.errors import UserError
from deeplab_jax.train import loop
from tests.conftest import ROOT
from tests.train.fault_helpers import BAD_FILE, final_params, loop_config
from tests.train.test_multihost import free_port

pytestmark = pytest.mark.xdist_group('faults')  # one worker builds this file's shared fixtures


def small_state(step: int) -> dict:
  """A train-state-shaped tree whose values say which step wrote it."""
  return {'params': {'w': jnp.full((64, 64), float(step)), 'b': jnp.arange(100.0) + step},
          'batch_stats': {'mean': jnp.full((8,), float(step))}, 'step': jnp.asarray(step)}


def saved_run(directory, steps=(1, 2, 3)) -> str:
  checkpointer = Checkpointer(directory, max_to_keep=5, keep_best=False)
  for step in steps:
    checkpointer.save(step, small_state(step))
  checkpointer.close()
  return directory


def truncate_data_files(step_folder):
  for path in glob.glob(os.path.join(step_folder, '**', 'd', '*'), recursive=True):
    with open(path, 'r+b') as f:
      f.truncate(os.path.getsize(path) // 2)


def remove_largest_data_file(step_folder):
  os.remove(max(glob.glob(os.path.join(step_folder, '**', 'd', '*'), recursive=True),
                key=os.path.getsize))


@pytest.mark.parametrize('damage, reason', [(truncate_data_files, 'a truncated file'),
                                            (remove_largest_data_file, 'a missing file')])
def test_a_damaged_newest_checkpoint_resumes_from_the_newest_intact_one(tmp_path, damage, reason):
  directory = saved_run(str(tmp_path / 'checkpoints'))
  damage(os.path.join(directory, '3'))
  lines = []
  restored = Checkpointer(directory).restore_or_keep(small_state(0), lines.append)
  assert int(restored['step']) == 2 and float(restored['params']['w'][0, 0]) == 2.0
  assert len(lines) == 1 and 'step 3: ' + reason in lines[0] and 'resuming from step 2' in lines[0]

  warnings = []
  variables, step = checkpoint.read_variables(directory, log=warnings.append)  # eval, predict
  assert step == 2 and float(variables['batch_stats']['mean'][0]) == 2.0
  assert len(warnings) == 1 and 'step 3: ' + reason in warnings[0]
  for explicit in [dict(path=directory, step=3), dict(path=os.path.join(directory, '3'))]:
    with pytest.raises(UserError, match=r'Checkpoint .*/3 .* damaged \(' + reason) as error:
      checkpoint.read_variables(**explicit)
    assert '\n' not in str(error.value)


def test_every_checkpoint_damaged_stops_rather_than_starting_from_scratch(tmp_path):
  directory = saved_run(str(tmp_path / 'checkpoints'), steps=(1, 2))
  for step in ('1', '2'):
    remove_largest_data_file(os.path.join(directory, step))
  with pytest.raises(UserError, match='/2 does not match .* or is damaged'):
    Checkpointer(directory).restore_or_keep(small_state(0), lambda _: None)


KILL_MID_SAVE = """
import os, signal, sys
from etils.epath import backend
from deeplab_jax.checkpoint import Checkpointer
from tests.train.test_faults import small_state
real = backend._OsPathBackend.open
def open_or_die(self, path, mode):  # killed as the arrays are written, before the metadata
  if 'w' in mode and str(path).endswith('_METADATA') and 'default.orbax-checkpoint-tmp' in str(path):
    os.kill(os.getpid(), signal.SIGKILL)
  return real(self, path, mode)
backend._OsPathBackend.open = open_or_die
checkpointer = Checkpointer(sys.argv[1])
checkpointer.save(3, small_state(3))
checkpointer.close()
"""


def test_a_save_killed_half_way_is_named_and_the_run_resumes_before_it(tmp_path):
  directory = saved_run(str(tmp_path / 'checkpoints'), steps=(1, 2))
  killed = subprocess.run([sys.executable, '-c', KILL_MID_SAVE, directory], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT), capture_output=True, text=True,
                          timeout=300)
  assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
  assert checkpoint.unfinished_steps(directory) == [3]
  lines = []
  checkpointer = Checkpointer(directory)
  restored = checkpointer.restore_or_keep(small_state(0), lines.append)
  assert int(restored['step']) == 2
  assert len(lines) == 1 and 'step 3: an unfinished save' in lines[0] and 'from step 2' in lines[0]
  checkpointer.save(3, small_state(3))  # the rerun saves step 3 again, over the leftovers
  checkpointer.close()
  assert Checkpointer(directory).all_steps() == [1, 2, 3]
  assert checkpoint.unfinished_steps(directory) == []


def full_disk_for(step: int):
  """epath's open for writing raises ENOSPC inside step's temporary folder (orbax's metadata writes)."""
  real = epath_backend._OsPathBackend.open

  def open_or_enospc(self, path, mode):
    if 'w' in mode and f'{step}.orbax-checkpoint-tmp' in str(path):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    return real(self, path, mode)
  return open_or_enospc


def test_a_full_disk_during_a_save_is_one_line_and_earlier_checkpoints_resume(tmp_path, monkeypatch):
  directory = saved_run(str(tmp_path / 'checkpoints'), steps=(1, 2))
  checkpointer = Checkpointer(directory)
  monkeypatch.setattr(epath_backend._OsPathBackend, 'open', full_disk_for(3))
  with pytest.raises(UserError) as error:
    checkpointer.save(3, small_state(3))
    checkpointer.close()
  monkeypatch.undo()
  message = str(error.value)
  assert '\n' not in message and f'No space left on device saving the checkpoint of step 3 in {directory}' \
      in message
  need = sum(x.nbytes for x in jax.tree.leaves(small_state(3))) / 2**20
  assert f'a checkpoint needs about {need:.1f} MB' in message and 'resume from step 2' in message
  checkpointer.close()  # the error is not raised again: the run's own cleanup must not mask it
  restored = Checkpointer(directory).restore_or_keep(small_state(0), lambda _: None)
  assert int(restored['step']) == 2


def test_metrics_added_after_a_save_keep_the_best_checkpoint_across_restarts(tmp_path):
  directory = str(tmp_path / 'checkpoints')
  checkpointer = Checkpointer(directory, max_to_keep=1, keep_best=True)
  for step, miou in [(2, 0.5), (4, 0.3), (6, 0.2)]:
    checkpointer.save(step, small_state(step))  # saved before its evaluation
    checkpointer.add_metrics(step, {'miou': miou})
  checkpointer.close()
  assert checkpointer.all_steps() == [2, 6]
  restarted = Checkpointer(directory, max_to_keep=1, keep_best=True)
  restarted.save(8, small_state(8))
  restarted.close()
  assert restarted.all_steps() == [2, 8]  # step 2's mIoU was read back from disk


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('fault_data'))
  synthetic.ensure(root, log=lambda _: None, **loop_config(root).data.synthetic.to_dict())
  return root


def test_an_evaluation_that_fails_keeps_the_step_checkpoint(tmp_path, data_root, monkeypatch):
  config = loop_config(data_root, num_steps=4)
  config.train.eval_every = 2
  config.train.checkpoint_every = 100

  def out_of_memory(*args, **kwargs):
    raise RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to allocate 9.1G')

  monkeypatch.setattr(loop.evaluator, 'evaluate', out_of_memory)
  workdir = str(tmp_path / 'run')
  with pytest.raises(UserError, match='Evaluation at step 2 failed .*RESOURCE_EXHAUSTED.* saved '
                                      'before evaluating') as error:
    loop.train_and_evaluate(config, workdir, log=lambda _: None)
  assert '\n' not in str(error.value)
  assert Checkpointer(os.path.join(workdir, 'checkpoints')).all_steps() == [2]


def copy_of(data_root, tmp_path) -> str:
  root = str(tmp_path / 'data')
  shutil.copytree(data_root, root)
  return root


def train_images(root):
  return sorted(glob.glob(os.path.join(root, '**', 'JPEGImages', '*'), recursive=True))


def damage_at_step(step: int, damage):
  """A log function that calls damage() when the run logs `step`."""
  def log(line):
    if line.startswith(f'step {step}/'):
      damage()
  return log


def test_a_file_deleted_mid_run_stops_it_naming_the_file(tmp_path, data_root):
  root = copy_of(data_root, tmp_path)
  victim = train_images(root)[0]
  config = loop_config(root, num_steps=10)
  with pytest.raises(UserError, match=f'Bad input data: {victim}') as error:
    loop.train_and_evaluate(config, str(tmp_path / 'run'), log=damage_at_step(2, lambda: os.remove(victim)))
  assert 'latest checkpoint is step' in str(error.value) and 'skip_bad_examples' in str(error.value)


def test_a_file_truncated_mid_run_is_skipped_and_counted(tmp_path, data_root):
  root = copy_of(data_root, tmp_path)
  victim = train_images(root)[0]

  def truncate():
    with open(victim, 'r+b') as f:
      f.truncate(200)

  config = loop_config(root, num_steps=12)  # tf.data reads a few batches ahead of the step
  config.data.skip_bad_examples = True
  lines = []
  log = damage_at_step(2, truncate)
  loop.train_and_evaluate(config, str(tmp_path / 'run'), log=lambda line: (lines.append(line), log(line)))
  last = [line for line in lines if line.startswith('step 12/')][0]
  assert 'bad examples skipped' in last
  assert int(last.split('bad examples skipped')[0].split()[-1]) >= 1


def two_processes(base: str, data_root: str, *mode: str, timeout_s: int = 1800) -> list[dict]:
  """The RESULT dicts of preemption_worker's two processes, in process order."""
  port, env = free_port(), dict(os.environ, PYTHONPATH=ROOT)
  workers = [subprocess.Popen([sys.executable, '-m', 'tests.train.preemption_worker', str(port), str(i),
                               base, data_root, *mode], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
  try:
    outputs = [w.communicate(timeout=timeout_s)[0] for w in workers]
  finally:
    for w in workers:
      w.kill()
  assert all(w.returncode == 0 for w in workers), '\n'.join(o[-3000:] for o in outputs)
  return [json.loads(line[len('RESULT '):]) for o in outputs for line in o.splitlines()
          if line.startswith('RESULT ')]


def test_a_first_batch_that_one_process_of_two_cannot_read_stops_both_at_once(tmp_path, data_root):
  # The process with the bad file used to stop alone, leaving the other at the start-up barrier for
  # half an hour. Idle: 16 s.
  results = two_processes(str(tmp_path), data_root, 'first_batch', timeout_s=600)
  assert results[0]['error'].startswith('Process 1 of 2 could not read its batch')
  assert results[1]['error'].startswith(f'Bad input data: {BAD_FILE}: ')
  assert '(read for step 1). No checkpoint was saved yet: replace or remove the file' in results[1]['error']


def test_preemption_or_a_bad_file_on_one_process_of_two_stops_both_at_one_step_and_resumes_exactly(
    tmp_path, data_root):
  base = str(tmp_path)
  results = two_processes(base, data_root)  # a minute idle; under heavy load more
  assert [r['exit'] for r in results] == [143, 143]
  saved = results[0]['saved']
  assert results[1]['saved'] == saved and 1 <= saved < 4
  assert results[0]['last_line'].startswith(f'SIGTERM: saved a checkpoint at step {saved} (all 2 '
                                            'processes)')
  # Resumed, process 1 could not read the batch of step 5: both stop after step 5, neither saves it
  # (step 3 was saved), process 1 names the file, process 0 names process 1.
  assert [r['bad_saved'] for r in results] == [3, 3]
  assert results[0]['error'].startswith('Process 1 of 2 could not read its batch')
  assert results[1]['error'].startswith(f'Bad input data: {BAD_FILE}')
  assert '(read for step 5)' in results[1]['error']
  assert all('latest checkpoint is step 3' in r['error'] for r in results)
  # Resumed once more, the run that was preempted and given a bad file equals the straight one.
  jax.tree.map(np.testing.assert_array_equal, final_params(os.path.join(base, 'straight')),
               final_params(os.path.join(base, 'run')))
