"""deeplab_jax.benchmarks.conv_ops: the lowerings agree where timed; --write_defaults feeds 'auto'."""
import json

import pytest

from deeplab_jax.benchmarks import conv_ops
from deeplab_jax.ops import atrous

TINY = {'dw': conv_ops.Case(9, 4, 4, 3, rate=2, depthwise=True),
        'dw_s2': conv_ops.Case(9, 4, 4, 3, stride=2, depthwise=True),
        'pw': conv_ops.Case(9, 4, 6, 1), 'conv3': conv_ops.Case(9, 4, 6, 3),
        'conv3_r2': conv_ops.Case(9, 4, 6, 3, rate=2)}


@pytest.mark.parametrize('name,backward', [(name, True) for name in TINY] + [('conv3_r2', False)])
def test_measure_times_every_side_and_the_lowerings_agree(name, backward):
  row = conv_ops.measure(name, TINY[name], batch=2, repeats=2, with_torch=True, backward=backward)
  sides = {'library', 'fast'} if name != 'conv3' else {'library'}  # a 3x3 at rate 1 has one lowering
  assert sides <= set(row['medians']) and all(t > 0 for t in row['medians'].values())
  if 'fast' in row['medians']:
    assert row['max_relative_difference'] < 1e-5  # same function, float32 rounding apart
  text = conv_ops.format_row(row)
  assert text.strip().startswith(name) and ('vs torch' in text) == ('torch' in row['medians'])


def test_winners_use_the_geometric_mean_per_kind():
  rows = [{'kind': 'depthwise', 'medians': {'library': 8.0, 'fast': 1.0}},
          {'kind': 'depthwise', 'medians': {'library': 1.0, 'fast': 2.0}},  # geometric mean 2: taps
          {'kind': 'pointwise', 'medians': {'library': 1.0, 'fast': 3.0}},
          {'kind': 'regular', 'medians': {'library': 1.0}}]
  choices = conv_ops.winners(rows)
  assert (choices['depthwise'], choices['pointwise']) == ('taps', 'conv')
  assert choices['depthwise_library_over_fast'] == 2.0


def test_written_lowering_is_what_auto_reads_and_keeps_the_atrous_entry(tmp_path, monkeypatch):
  path = tmp_path / 'defaults.json'
  atrous.write_defaults('cpu', {False: 'space_to_batch', True: 'dilation'}, {'date': 'd'}, str(path))
  atrous.write_lowering('cpu', {'depthwise': 'grouped', 'pointwise': 'dot'}, {'date': 'e'}, str(path))
  atrous.write_defaults('cpu', {False: 'space_to_batch', True: 'dilation'}, {'date': 'f'}, str(path))
  table = json.loads(path.read_text())
  assert table['cpu']['lowering'] == {'depthwise': 'grouped', 'pointwise': 'dot', 'date': 'e'}
  monkeypatch.setattr(atrous, 'DEFAULTS_PATH', str(path))
  assert atrous.default_lowering('cpu', 'depthwise') == 'grouped'
  assert atrous.default_lowering('cpu', 'pointwise') == 'dot'
  assert atrous.default_lowering('tpu', 'depthwise') == 'grouped'  # unlisted: the library conv
  assert atrous.default_impl('cpu', False) == 'space_to_batch'
