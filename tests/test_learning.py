"""Learning: the README's quickstart (DeepLabv3, small ResNet, synthetic data) reaches val mIoU >= 0.80.

Runs the real entry point in a subprocess on one CPU device, exactly as the README's first command
does, with the data and workdir in a temporary folder.
"""
import json
import os
import subprocess
import sys

from tests.conftest import ROOT


def test_quickstart_reaches_80_miou(tmp_path):
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  env.pop('XLA_FLAGS', None)
  result = subprocess.run(
      [sys.executable, '-m', 'deeplab_jax.main', '--config=configs/quickstart.py',
       f'--workdir={tmp_path}/run', f'--config.data.root={tmp_path}/data'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(tmp_path / 'run' / 'config.json') as f:
    steps = json.load(f)['train']['num_steps']
  with open(tmp_path / 'run' / 'eval' / f'val_step{steps}.json') as f:
    results = json.load(f)
  print(result.stdout[-1500:])
  losses = [float(line.split('loss ')[1].split()[0]) for line in result.stdout.splitlines()
            if line.startswith('step ') and 'loss ' in line]
  assert losses[-1] < 0.5 * losses[0]  # the curve went down, not just the final number
  assert results['miou'] >= 0.80, results['per_class_iou']
