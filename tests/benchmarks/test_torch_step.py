"""deeplab_jax.benchmarks.torch_step: ours is torchvision's architecture; the interleaved comparison runs."""
import jax
import pytest

from deeplab_jax import peers
from deeplab_jax.benchmarks import torch_step
from deeplab_jax.models.deeplab import variable_shapes
from tests.conftest import tiny_config

pytestmark = pytest.mark.xdist_group('benchmark_torch_step')  # one worker builds this file's shared fixtures


@pytest.fixture(scope='module')
def torchvision():
  """(torch, torchvision.models.segmentation) through the peers' tv_shim; skips without them."""
  pytest.importorskip('torch')
  peers.add_to_path()
  pytest.importorskip('tv_shim', reason=f'peers helpers not found in {peers.folder()} (DEEPLAB_JAX_PEERS)')
  return torch_step.import_peers()


@pytest.mark.parametrize('arch', ['resnet50', 'mobilenet_v3_large', 'smp_resnet101'])
def test_both_sides_are_the_same_architecture(torchvision, arch):
  # The pairs torch_step times have equal parameter counts (smp_xception65's decoders differ).
  if arch.startswith('smp') and torchvision.smp is None:
    pytest.skip('segmentation_models_pytorch is not installed')
  config = torch_step.our_config(arch, 'float32', 11)
  ours = sum(x.size for x in jax.tree.leaves(variable_shapes(config)['params']))
  peer = torch_step.ARCHS[arch].peer(torchvision, 11)
  assert ours == sum(p.numel() for p in peer.parameters())


def test_compare_interleaves_both_sides_and_reports_the_ratio(torchvision, monkeypatch, capsys):
  # Ours shrunk to the tests' tiny model (its compile would take minutes at ResNet-101); theirs stays
  # deeplabv3_resnet101, fast at this size. Batch 8: one image per host device of the test session.
  config = tiny_config()
  config.data.num_classes = 21
  monkeypatch.setattr(torch_step, 'our_config', lambda arch, dtype, num_classes: config)
  rows = torch_step.compare(['inference'], batch_size=8, size=17, steps=2, warmup=1, dtype='float32')
  assert 'theirs: torchvision deeplabv3_resnet101, torch ' in capsys.readouterr().out
  [row] = rows
  assert row['mode'] == 'inference' and row['compile_s'] > 0
  assert {name: len(t) for name, t in row['times'].items()} == {'deeplab_jax': 2, 'peer': 2}
  assert all(t > 0 for times in row['times'].values() for t in times)
  assert row['ratio'] == pytest.approx(row['medians']['peer'] / row['medians']['deeplab_jax'])
  text = torch_step.format_rows(rows, 8)
  assert text.startswith('inference: deeplab_jax ') and f"= {row['ratio']:.2f}x" in text
  assert 'peer step times (s): ' in text
