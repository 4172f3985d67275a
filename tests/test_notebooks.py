"""Every experiments/*.ipynb executes top to bottom on the smoke sweep's results and prints its table."""
import glob
import os

import pytest

from tests.conftest import ROOT, execute_notebook
from tests.experiments.smoke_sweep import smoke_sweep

pytestmark = pytest.mark.xdist_group('sweep')  # the worker that builds the smoke sweep for test_sweep

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, 'experiments', '*.ipynb')))


@pytest.fixture(scope='session')
def smoke(tmp_path_factory):
  return smoke_sweep(str(tmp_path_factory.getbasetemp() / 'smoke'))


def test_there_are_notebooks():
  assert {os.path.basename(p) for p in NOTEBOOKS} >= {'ablation_tables.ipynb', 'training_curves.ipynb'}


@pytest.mark.parametrize('path', NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes_and_prints_its_table(path, smoke, monkeypatch):
  texts, outputs = execute_notebook(path, monkeypatch, SWEEP_WORKDIR=smoke['workdir'])
  table = next(t for t in texts if t.startswith('| point |') or '\n| point |' in t)
  for point in ('pool', 'no_pool'):
    assert f'| {point} |' in table
  assert 'not run yet' not in table  # both points finished, so every row has our number
  assert any('image/png' in o.get('data', {}) for o in outputs)  # the plot
