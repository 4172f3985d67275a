"""`python -m deeplab_jax.data.benchmark` on four synthetic JPEGs, read as files and as records."""
import re

from tests.conftest import run_module


def test_folder_and_record_streams_are_measured(tmp_path):
  result = run_module('deeplab_jax.data.benchmark', f'--root={tmp_path}', '--images=4', '--threads=1',
                      '--batches=2', '--batch_size=2', '--crop=48', '--sources=folder,tfds', timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  rows = re.findall(r'(folder|tfds) threads 1: +([\d.]+) images/s', result.stdout)
  assert [source for source, _ in rows] == ['folder', 'tfds'] and all(float(r) > 0 for _, r in rows)
  assert (tmp_path / 'records' / 'deeplab_segmentation' / 'benchmark_4').is_dir()
