"""deeplab_jax.benchmarks.atrous: the two impls agree where timed; --write_defaults feeds default_impl."""
import datetime
import json

import jax
import pytest

from deeplab_jax.benchmarks import atrous as bench
from deeplab_jax.ops import atrous
from tests.conftest import run_module

TINY = {'tiny': bench.Case(9, 4, 6, False), 'tiny_dw': bench.Case(9, 4, 4, True)}


def test_measure_times_every_case_and_the_impls_agree():
  lines = []
  rows = bench.measure(TINY, [1, 2], ['fwd', 'fwd+bwd'], repeats=2, batch=1,
                       log=lambda line, **_: lines.append(line))
  assert [(r['case'], r['rate'], r['pass']) for r in rows] == [
      (case, rate, p) for case in TINY for rate in (1, 2) for p in ('fwd', 'fwd+bwd')]
  for row in rows:
    assert all(row['median_s'][impl] > 0 and row['compile_s'][impl] > 0 for impl in atrous.IMPLS)
    assert row['max_relative_difference'] < 1e-5  # same function, float32 rounding apart
  assert len(lines) == 2 + len(rows) and all(line.startswith('| tiny') for line in lines[2:])
  assert set(bench.winners(rows)) == {False, True}


def test_winners_use_the_geometric_mean_over_rates_above_one():
  rows = [{'rate': 1, 'depthwise': False, 'ratio': 100.},  # rate 1: both impls run the same conv
          {'rate': 2, 'depthwise': False, 'ratio': 4.}, {'rate': 6, 'depthwise': False, 'ratio': 0.5},
          {'rate': 2, 'depthwise': True, 'ratio': 0.25}, {'rate': 6, 'depthwise': True, 'ratio': 2.}]
  found = bench.winners(rows)
  assert found[False] == ('space_to_batch', pytest.approx(2 ** 0.5))
  assert found[True] == ('dilation', pytest.approx(2 ** -0.5))


def test_write_defaults_needs_both_kinds(tmp_path):
  path = tmp_path / 'defaults.json'
  with pytest.raises(SystemExit, match='needs a regular and a depthwise case'):
    bench.record_defaults({False: ('dilation', 0.5)}, 'python -m ...', str(path))
  assert not path.exists()


def test_write_defaults_command_records_this_platform(tmp_path, monkeypatch):
  path = tmp_path / 'defaults.json'
  path.write_text(json.dumps({'gpu': {'regular': 'space_to_batch', 'depthwise': 'dilation'}}))
  result = run_module('deeplab_jax.benchmarks.atrous', '--cases=aspp_os16,xception_dw_os16', '--rates=2',
                      '--passes=fwd', '--repeats=1', '--write_defaults', f'--defaults_file={path}',
                      timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.count('| aspp_os16 |') == 1 and result.stdout.count('| xception_dw_os16 |') == 1
  table = json.loads(path.read_text())
  assert table['gpu'] == {'regular': 'space_to_batch', 'depthwise': 'dilation'}  # kept as it was
  entry = table[jax.default_backend()]
  assert entry['date'] == datetime.date.today().isoformat()
  [measured] = entry['measured']
  assert measured['command'].startswith('python -m deeplab_jax.benchmarks.atrous --cases=aspp_os16')
  assert set(measured['dilation_over_space_to_batch']) == {'regular', 'depthwise'}
  monkeypatch.setattr(atrous, 'DEFAULTS_PATH', str(path))
  for depthwise, kind in ((False, 'regular'), (True, 'depthwise')):
    assert atrous.default_impl(jax.default_backend(), depthwise) == entry[kind] in atrous.IMPLS
    assert f'depthwise={depthwise}: geometric-mean dilation / s2b over rates > 1' in result.stdout
