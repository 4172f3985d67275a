"""Learning: the README's quickstart (DeepLabv3, small ResNet, synthetic data) reaches val mIoU >= 0.80.

Runs the real entry point in a subprocess on one CPU device, exactly as the README's first command
does, with the data and workdir in a temporary folder (the session's `quickstart_run`).
"""
import pytest

from tests.conftest import final_eval

pytestmark = pytest.mark.xdist_group('quickstart')  # one worker builds the session's quickstart_run


def test_quickstart_reaches_80_miou(quickstart_run):
  workdir, _, stdout = quickstart_run
  results = final_eval(workdir)
  print(stdout[-1500:])
  losses = [float(line.split('loss ')[1].split()[0]) for line in stdout.splitlines()
            if line.startswith('step ') and 'loss ' in line]
  assert losses[-1] < 0.5 * losses[0]  # the curve went down, not just the final number
  assert results['miou'] >= 0.80, results['per_class_iou']
