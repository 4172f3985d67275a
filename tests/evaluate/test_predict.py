"""--mode=predict input handling: odd image files, non-images, tiles; one label PNG per valid image."""
import os

import numpy as np
from PIL import Image
import pytest

from deeplab_jax import checkpoint
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference, predict
from deeplab_jax.ops import crf
from tests.conftest import run_main
from tests.evaluate.conftest import save_checkpoint


def make_folder(folder):
  """A mix of valid images in awkward formats and files that are not images; returns valid sizes."""
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(folder / 'plain.jpg')
  Image.fromarray(rgb[..., 0]).save(folder / 'grey.png')
  Image.fromarray(np.dstack([rgb, np.full((30, 44), 128, np.uint8)])).save(folder / 'alpha.png')
  Image.fromarray(rng.integers(0, 65536, (26, 33), dtype=np.uint16)).save(folder / 'deep.png')
  rotated = Image.fromarray(rng.integers(0, 256, (20, 36, 3), dtype=np.uint8))
  exif = rotated.getexif()
  exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees to view upright
  rotated.save(folder / 'phone.jpg', exif=exif)
  Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(folder / 'large.png')
  (folder / 'notes.txt').write_text('not an image')
  (folder / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 truncated')
  (folder / 'sub').mkdir()
  return {'plain': (30, 44), 'grey': (30, 44), 'alpha': (30, 44), 'deep': (26, 33),
          'phone': (36, 20), 'large': (70, 90)}


def test_predict_folder_writes_one_png_per_valid_image(tiny, tmp_path):
  config, model, variables = tiny
  config.predict.max_size, config.predict.tile_size = 64, 48  # 'large' goes by tiles
  config.predict.tile_batch = 1
  folder, out = tmp_path / 'in', str(tmp_path / 'out')
  folder.mkdir()
  sizes = make_folder(folder)
  shapes, lines = [], []
  base_fn = predict.make_probs_fn(model, variables, inference.Setting())
  probs_fn = lambda x: shapes.append(x.shape) or base_fn(x)  # noqa: E731
  written = predict.predict_files(probs_fn, predict.list_inputs(str(folder)), out, config, lines.append)
  assert sorted(os.path.basename(p) for p in written) == sorted(f'{s}.png' for s in sizes)
  for stem, (h, w) in sizes.items():
    with Image.open(os.path.join(out, stem + '.png')) as png:
      assert png.mode == 'P' and png.size == (w, h)
      assert np.asarray(png).max() < config.data.num_classes
    with Image.open(os.path.join(out, stem + '_overlay.png')) as overlay:
      assert overlay.size == (2 * w + 4, h)
  warnings = [line for line in lines if line.startswith('warning')]
  assert len(warnings) == 2 and any('notes.txt' in w for w in warnings)
  assert any('broken.jpg' in w for w in warnings)
  assert (1, 48, 48, 3) in shapes  # tiles for the large image
  # Whole images padded to sides of 64 * k + 1 (corner-aligned: every stride's grid ends on the last
  # pixel): 30 x 44 -> 65 x 65; half-pixel configs pad to 64 * k.
  assert (1, 65, 65, 3) in shapes and not any(s[1] % 64 != 1 for s in shapes if s[1] != 48)


def test_tiles_run_in_batches_and_give_the_one_at_a_time_result(tiny):
  config, model, variables = tiny
  config.predict.max_size, config.predict.tile_size = 64, 48
  image = np.random.default_rng(3).integers(0, 256, (70, 90, 3), dtype=np.uint8)
  base_fn = predict.make_probs_fn(model, variables, inference.Setting())
  results = {}
  for batch in (1, 4):
    config.predict.tile_batch, shapes = batch, []
    probs_fn = lambda x: shapes.append(x.shape[0]) or base_fn(x)  # noqa: E731, B023
    results[batch] = (predict.predict_probabilities(probs_fn, image, config), shapes)
  # 2 x 3 windows of 48 (overlap 0.33): one at a time, or a batch of 4 and then the remaining 2.
  assert results[1][1] == [1] * 6 and results[4][1] == [4, 2]
  np.testing.assert_allclose(results[4][0], results[1][0], atol=1e-5)


def test_with_plain_gives_the_plain_and_the_refined_probabilities_of_one_pass(tiny):
  config, model, variables = tiny
  params = crf.CRFParams(method='exact', iterations=2)
  image = np.random.default_rng(1).integers(0, 256, (2, 24, 28, 3)).astype(np.float32)
  x = (image - np.float32(config.data.mean)) / np.float32(config.data.std)
  kwargs = dict(crf_params=params, mean=config.data.mean, std=config.data.std)
  setting = inference.Setting()
  both = np.asarray(predict.make_probs_fn(model, variables, setting, with_plain=True, **kwargs)(x))
  plain = np.asarray(predict.make_probs_fn(model, variables, setting)(x))
  refined = np.asarray(predict.make_probs_fn(model, variables, setting, **kwargs)(x))
  n = plain.shape[-1]
  assert both.shape[-1] == 2 * n
  np.testing.assert_allclose(both[..., :n], plain, atol=1e-6)
  np.testing.assert_allclose(both[..., n:], refined, atol=1e-6)


def test_images_are_converted_as_users_expect(tmp_path):
  deep = np.array([[0, 257, 32896, 65535]], np.uint16)
  Image.fromarray(deep).save(tmp_path / 'deep.png')
  np.testing.assert_array_equal(predict.load_image(str(tmp_path / 'deep.png'))[0, :, 0], [0, 1, 128, 255])
  rgba = np.zeros((1, 2, 4), np.uint8)
  rgba[0, 1] = (10, 20, 30, 255)  # pixel 0 fully transparent: shows as white, as viewers do
  Image.fromarray(rgba).save(tmp_path / 'rgba.png')
  np.testing.assert_array_equal(predict.load_image(str(tmp_path / 'rgba.png'))[0],
                                [[255, 255, 255], [10, 20, 30]])
  upright = np.zeros((4, 6, 3), np.uint8)
  upright[0, 0] = 255  # top-left marker
  stored = Image.fromarray(np.rot90(upright, k=1).copy())  # as a camera stores a rotated shot
  exif = stored.getexif()
  exif[0x0112] = 6
  stored.save(tmp_path / 'cam.png', exif=exif)
  loaded = predict.load_image(str(tmp_path / 'cam.png'))
  assert loaded.shape == (4, 6, 3) and loaded[0, 0, 0] == 255 and loaded[-1, -1, 0] == 0


def test_missing_input_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match='neither a file nor a folder'):
    predict.list_inputs(str(tmp_path / 'nope'))


def test_predict_mode_through_main_reads_the_stored_config(tiny, tmp_path):
  config, _, variables = tiny
  config.model.eval_output_stride = 8
  checkpoint.prepare_workdir(str(tmp_path), config)  # as training leaves it: no --config needed
  save_checkpoint(str(tmp_path), config, variables, 4)
  folder = tmp_path / 'in'
  folder.mkdir()
  Image.fromarray(np.zeros((30, 41, 3), np.uint8)).save(folder / 'a.png')
  (folder / 'b.txt').write_text('not an image')
  result = run_main('--mode=predict', f'--workdir={tmp_path}', f'--config.predict.input={folder}',
                    '--config.predict.scores=probabilities', timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'step 4' in result.stdout and 'b.txt' in result.stdout
  assert sorted(os.listdir(tmp_path / 'predict')) == ['a.npy', 'a.png', 'a_overlay.png']
  assert Image.open(tmp_path / 'predict' / 'a.png').size == (41, 30)
  probs = np.load(tmp_path / 'predict' / 'a.npy')
  assert probs.shape == (30, 41, config.data.num_classes) and probs.dtype == np.float32
  np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-5)


def test_bad_requests_through_main_are_one_line(tiny, tmp_path):
  config, _, variables = tiny
  checkpoint.prepare_workdir(str(tmp_path), config)
  save_checkpoint(str(tmp_path), config, variables, 4)
  (tmp_path / 'notes.txt').write_text('not an image')
  cases = {('--mode=predict', f'--config.predict.input={tmp_path}/notes.txt'): 'is a readable image',
           ('--mode=predict', f'--config.predict.input={tmp_path}/notes.txt', '--config.eval.step=7'):
           'No checkpoint for step 7',
           ('--mode=export', '--config.export.image_size=0', '--config.eval.scales=(0.5,1.0)'):
           'symbolic export size needs'}
  for args, message in cases.items():
    result = run_main(*args, f'--workdir={tmp_path}', timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
  assert sorted(os.listdir(tmp_path)) == ['checkpoints', 'config.json', 'notes.txt']


def test_bucketed_sides_are_few_and_close():
  for aligned in (False, True):
    sides = [predict.padded_side(s, 64, aligned) for s in range(1, 1025)]
    assert all(p >= s and (p - aligned) % 64 == 0 for s, p in zip(range(1, 1025), sides))
    assert all(p <= max(1.5 * (s + 64), 64 + aligned) for s, p in zip(range(1, 1025), sides))
    assert len(set(sides)) == 8  # 1, 2, 3, 4, 6, 8, 12, 16 times 64 (+ 1)
    plain = {predict.padded_side(s, 64, aligned, bucketed=False) for s in range(1, 1025)}
    assert len(plain) == 16


def test_a_folder_of_mixed_photo_sizes_compiles_a_few_shapes():
  """Distinct padded shapes (one compile each) of 100 photo sizes below predict.max_size."""
  rng = np.random.default_rng(0)
  sizes = [(int(h), int(w)) for h, w in rng.integers(200, 1025, (100, 2))]
  shapes = lambda bucketed: {(predict.padded_side(h, 64, True, bucketed),  # noqa: E731
                              predict.padded_side(w, 64, True, bucketed)) for h, w in sizes}
  assert (len(shapes(False)), len(shapes(True))) == (75, 23)


def test_label_ids_and_scores(tiny, tmp_path):
  config, model, variables = tiny
  config.data.dataset, config.data.num_classes = 'cityscapes', 19
  values = predict.stored_values(config.data)
  assert values[0] == 7 and values[1] == 8 and values[18] == 33  # road, sidewalk, bicycle
  config, model, variables = tiny
  config.predict.label_ids, config.predict.scores = True, 'logits'
  config.data.label_map = 'identity'
  Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(tmp_path / 'a.png')
  probs_fn = predict.make_probs_fn(model, variables, inference.Setting())
  predict.predict_files(probs_fn, [str(tmp_path / 'a.png')], str(tmp_path / 'out'), config, lambda _: None)
  logits = np.load(tmp_path / 'out' / 'a.npy')
  np.testing.assert_allclose(np.exp(logits).sum(-1), 1, atol=1e-5)
  with Image.open(tmp_path / 'out' / 'a.png') as png:
    np.testing.assert_array_equal(np.asarray(png), logits.argmax(-1))  # identity map: ids are classes
  config.predict.scores = 'logit'
  with pytest.raises(UserError, match='Unknown predict.scores'):
    predict.check_options(config)
