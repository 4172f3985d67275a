"""experiments/inference/segmenter.ipynb runs top to bottom on a tiny run folder and prints its table."""
import os

from deeplab_jax import checkpoint
from tests.conftest import ROOT, execute_notebook, tiny_config
from tests.evaluate.conftest import save_checkpoint

NOTEBOOK = os.path.join(ROOT, 'experiments', 'inference', 'segmenter.ipynb')


def test_segmenter_notebook_executes(tiny_model, tmp_path, monkeypatch):
  config = tiny_config()
  checkpoint.prepare_workdir(str(tmp_path), config)
  save_checkpoint(str(tmp_path), config, tiny_model[1], 2)
  texts, outputs = execute_notebook(NOTEBOOK, monkeypatch, SEGMENTER_WORKDIR=str(tmp_path))
  assert any(f'step 2, classes {tuple(config.data.class_names)}' in t for t in texts)
  assert any(f'(150, 210) (150, 210, {config.data.num_classes})' in t for t in texts)
  table = next(t for t in texts if t.startswith('| setting |'))
  assert all(f'| {name} |' in table for name in ('plain', 'flip', 'scales 0.75, 1, 1.25'))
  assert '| plain | ' in table and ' | 1.000 | ' in table.splitlines()[2]  # plain agrees with itself
  assert any('image/png' in o.get('data', {}) for o in outputs)
