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
  def row(rate, depthwise, s2b, taps):
    return {'rate': rate, 'depthwise': depthwise, 'over_dilation': {'space_to_batch': s2b, 'taps': taps}}

  rows = [row(1, False, 0.01, 0.01),  # rate 1: every impl runs the same conv
          row(2, False, 0.25, 4.), row(6, False, 2., 1.),  # means: s2b 0.71, taps 2
          row(2, True, 4., 0.5), row(6, True, 0.5, 0.5)]  # means: s2b 1.41, taps 0.5
  found = bench.winners(rows)
  assert found[False][0] == 'space_to_batch'
  assert found[False][1] == {'dilation': 1.0, 'space_to_batch': pytest.approx(2 ** -0.5),
                             'taps': pytest.approx(2.)}
  assert found[True][0] == 'taps' and found[True][1]['taps'] == pytest.approx(0.5)


def test_write_defaults_needs_both_kinds(tmp_path):
  path = tmp_path / 'defaults.json'
  with pytest.raises(SystemExit, match='needs a regular and a depthwise case'):
    bench.record_defaults({False: ('dilation', {'dilation': 1.0})}, 'python -m ...', str(path))
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
  assert set(measured['over_dilation']) == {'regular', 'depthwise'}
  assert set(measured['over_dilation']['regular']) == set(atrous.IMPLS)
  monkeypatch.setattr(atrous, 'DEFAULTS_PATH', str(path))
  for depthwise, kind in ((False, 'regular'), (True, 'depthwise')):
    assert atrous.default_impl(jax.default_backend(), depthwise) == entry[kind] in atrous.IMPLS
    assert f'depthwise={depthwise}: geometric-mean time / dilation over rates > 1' in result.stdout
