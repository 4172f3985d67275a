"""deeplab_jax.benchmarks.pipeline on four synthetic JPEGs: one line per thread count, images/s > 0."""
import re

import pytest

from tests.conftest import run_module


def test_reports_images_per_second_per_thread_count(tmp_path):
  pytest.importorskip('tensorflow')
  result = run_module('deeplab_jax.benchmarks.pipeline', f'--root={tmp_path}', '--images=4', '--threads=1,2',
                      '--batches=2', '--batch_size=2', '--crop=48', timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '4 JPEGs 375..500 px a side, crop 48, batch 2' in result.stdout
  rows = re.findall(r'threads (\d+): +([\d.]+) images/s, +([\d.]+) images per CPU-second, +([\d.]+) cores',
                    result.stdout)
  assert [int(threads) for threads, *_ in rows] == [1, 2]
  for _, rate, per_cpu, cores in rows:
    assert float(rate) > 0 and float(per_cpu) > 0 and float(cores) > 0
