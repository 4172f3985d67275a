"""Exported inference functions: jax.export files (fixed, rectangular, symbolic sizes) that a fresh
process without deeplab_jax runs, and ONNX files that onnxruntime runs (skipped without jax2onnx)."""
import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import export, inference, run
from deeplab_jax.models.deeplab import build_model
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
  exported = export.export(infer, 40, batch_size=0)
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


def _images(b, h, w, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (b, h, w, 3), dtype=np.uint8)


def test_rectangular_and_symbolic_sides(tiny, tmp_path):
  config, model, variables = tiny
  infer = export.inference_function(model, variables, config.data.mean, config.data.std,
                                    inference.Setting(corner_aligned=True), 'probabilities')
  fixed = export.export(infer, 33, 47, batch_size=2)
  assert str(fixed.in_avals[0]) == 'uint8[2,33,47,3]'
  images = _images(2, 33, 47)
  np.testing.assert_allclose(fixed.call(images), jax.jit(infer)(images), atol=1e-5)
  with pytest.raises(UserError, match='cannot take input'):  # 'taps' convs compare sides with rates
    export.export(infer, 0, 0, multiple=32)
  config.model.atrous_impl = 'dilation'  # as --mode=export builds it for symbolic sides
  infer = export.inference_function(build_model(config, train=False), variables, config.data.mean,
                                    config.data.std, inference.Setting(corner_aligned=True), 'probabilities')
  symbolic = export.load(export.save(export.export(infer, 0, 0, multiple=32), str(tmp_path / 's.jax')))
  assert str(symbolic.in_avals[0]) == 'uint8[b,32*h + 1,32*w + 1,3]'
  for shape in ((1, 65, 33), (2, 33, 97)):
    images = _images(*shape, seed=sum(shape))
    np.testing.assert_allclose(symbolic.call(images), jax.jit(infer)(images), atol=1e-5)
  with pytest.raises(ValueError):  # not of the form 32 * k + 1: jax refuses it, naming the shape
    symbolic.call(_images(1, 40, 33))


def test_export_mode_writes_nothing_on_bad_requests(tiny, tmp_path):
  config, _, variables = tiny
  with pytest.raises(UserError, match='No checkpoint|does not exist'):
    run.export_model(config, str(tmp_path), log=lambda _: None)
  save_checkpoint(str(tmp_path), config, variables, 2)
  config.export.height, config.export.width = -5, 40
  with pytest.raises(UserError, match='must be positive'):
    run.export_model(config, str(tmp_path), log=lambda _: None)
  config.export.height, config.export.image_size, config.eval.scales = 0, 0, (0.5, 1.0)
  with pytest.raises(UserError, match=r'symbolic export size needs eval.scales=\(1.0,\)'):
    run.export_model(config, str(tmp_path), log=lambda _: None)
  config.eval.scales, config.export.output = (1.0,), 'logits'
  with pytest.raises(UserError, match='Unknown export output'):
    run.export_model(config, str(tmp_path), log=lambda _: None)
  assert not os.path.exists(tmp_path / 'export')


def test_symbolic_export_mode_records_its_input(tiny, tmp_path):
  config, _, variables = tiny
  save_checkpoint(str(tmp_path), config, variables, 5)
  config.export.image_size, config.export.output = 0, 'labels'
  path = run.export_model(config, str(tmp_path), log=lambda _: None)
  assert path.endswith('step5_anyxany_bany_labels.jax')
  with open(export.metadata_path(path)) as f:
    meta = json.load(f)
  assert meta['input'] == 'uint8 RGB [B, 64*k+1 (any k >= 1), 64*k+1 (any k >= 1), 3]'
  assert meta['normalization_inside']['mean'] == list(config.data.mean)
  labels = export.load(path).call(_images(1, 129, 65))
  assert labels.shape == (1, 129, 65) and labels.dtype == np.int32


def test_onnx_equals_the_jax_function(tiny, tmp_path):
  pytest.importorskip('jax2onnx')
  ort = pytest.importorskip('onnxruntime')
  config, model, variables = tiny
  save_checkpoint(str(tmp_path), config, variables, 4)
  config.export.height, config.export.width, config.export.batch_size = 65, 49, 2
  config.export.output, config.export.path = 'probabilities', str(tmp_path / 'model.onnx')
  config.eval.flip = True
  path = run.export_model(config, str(tmp_path), log=lambda _: None)
  options = ort.SessionOptions()
  options.log_severity_level = 3  # onnxruntime warns about NHWC/NCHW shape hints it then merges
  session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
  images = _images(2, 65, 49, seed=3)
  got = session.run(None, {'images': images})[0]
  infer = export.inference_function(model, variables, config.data.mean, config.data.std,
                                    inference.Setting(flip=True, corner_aligned=True), 'probabilities')
  expected = np.asarray(jax.jit(infer)(images))
  assert got.shape == expected.shape == (2, 65, 49, config.data.num_classes)
  np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
  assert os.path.isfile(export.metadata_path(path))
