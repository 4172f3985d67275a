"""The mesh and the global batch: split over the 8 host devices the test session forces."""
import jax
import numpy as np

from deeplab_jax import sharding


def test_global_batch_splits_the_leading_axis_over_the_data_axis():
  mesh = sharding.make_mesh()
  assert mesh.axis_names == (sharding.DATA_AXIS,) and mesh.size == jax.device_count() == 8
  local = {'image': np.arange(16 * 2 * 3, dtype=np.float32).reshape(16, 2, 3),
           'label': np.arange(16, dtype=np.int32)}
  batch = sharding.global_batch(local, mesh)
  for key, value in local.items():
    np.testing.assert_array_equal(np.asarray(batch[key]), value)
    shards = sorted(batch[key].addressable_shards, key=lambda s: s.index[0].start)
    assert [s.data.shape[0] for s in shards] == [2] * 8  # 16 examples, 2 per device, in order
    np.testing.assert_array_equal(np.asarray(shards[3].data), value[6:8])


def test_replicated_puts_the_whole_array_on_every_device():
  mesh = sharding.make_mesh(jax.devices()[:4])
  x = jax.device_put(np.arange(6.0), sharding.replicated(mesh))
  assert len(x.addressable_shards) == 4
  assert all(np.array_equal(np.asarray(s.data), np.arange(6.0)) for s in x.addressable_shards)
