"""The exported inference function runs in a fresh process that has no deeplab_jax model code."""
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np

from deeplab_jax.evaluate import export, inference, run
from tests.evaluate.conftest import save_checkpoint

LOADER = textwrap.dedent('''
    import sys
    import numpy as np
    from jax import export
    with open(sys.argv[1], 'rb') as f:
      exported = export.deserialize(bytearray(f.read()))
    images = np.load(sys.argv[2])
    np.save(sys.argv[3], np.asarray(exported.call(images)))
    np.save(sys.argv[4], np.asarray(exported.call(images[:1])))  # another batch size: symbolic
    assert not any(m.startswith('deeplab_jax') for m in sys.modules), sorted(sys.modules)
''')


def test_exported_file_round_trip_in_a_fresh_process(tiny, tmp_path):
  config, model, variables = tiny
  infer = export.inference_function(model, variables, config.data.mean, config.data.std,
                                    inference.Setting((1.0,), flip=True), 'labels')
  exported = export.export(infer, image_size=40, batch_size=0)
  assert str(exported.in_avals[0]) == 'uint8[b,40,40,3]'
  path = export.save(exported, str(tmp_path / 'model.jax'))
  images = np.random.default_rng(0).integers(0, 256, (3, 40, 40, 3), dtype=np.uint8)
  np.save(tmp_path / 'images.npy', images)
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  result = subprocess.run([sys.executable, '-c', LOADER, path, str(tmp_path / 'images.npy'),
                           str(tmp_path / 'out.npy'), str(tmp_path / 'one.npy')],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  expected = np.asarray(jax.jit(infer)(images))
  labels = np.load(tmp_path / 'out.npy')
  assert labels.shape == (3, 40, 40) and labels.dtype == np.int32
  np.testing.assert_array_equal(labels, expected)
  np.testing.assert_array_equal(np.load(tmp_path / 'one.npy'), expected[:1])
  assert len(np.unique(expected)) > 1  # the model does not answer one class everywhere


def test_export_mode_fixed_batch_probabilities_from_a_checkpoint(tiny, tmp_path):
  config, model, variables = tiny
  save_checkpoint(str(tmp_path), config, variables, 7)
  config.export.image_size, config.export.batch_size, config.export.output = 32, 2, 'probabilities'
  path = run.export_model(config, str(tmp_path), log=lambda _: None)
  assert path == str(tmp_path / 'export' / 'step7_32_b2_probabilities.jax')
  exported = export.load(path)
  assert str(exported.out_avals[0]) == f'float32[2,32,32,{config.data.num_classes}]'
  images = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  normalised = (images - np.float32(config.data.mean)) / np.float32(config.data.std)
  expected = jax.nn.softmax(model.apply(variables, normalised)['logits'], -1)
  np.testing.assert_allclose(exported.call(images), expected, atol=1e-5)
