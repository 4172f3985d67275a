"""deeplab_jax.benchmarks.save_memory: samples every few saves, and names where memory grew."""
from deeplab_jax.benchmarks import save_memory


def test_measure_samples_rss_and_traced_memory_and_diffs_the_snapshots(tmp_path):
  lines = []
  samples, growth = save_memory.measure(saves=12, arrays=3, side=8, every=5, folder=str(tmp_path),
                                        log=lines.append)
  assert [s[0] for s in samples] == [5, 10, 12] and len(lines) == 3
  assert all(rss > 0 and traced > 0 for _, rss, traced in samples)
  assert growth and all(hasattr(stat, 'size_diff') for stat in growth)
  # Three checkpoints kept, as the training loop keeps them.
  kept = sorted(p.name for p in (tmp_path / 'checkpoints').iterdir() if p.name.isdigit())
  assert kept == ['10', '11', '12']
