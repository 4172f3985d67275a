"""--mode=predict input handling: odd image files, non-images, tiles; one label PNG per valid image."""
import os

import numpy as np
from PIL import Image
import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference, predict
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


def test_predict_mode_through_main(tiny, tmp_path):
  config, _, variables = tiny
  save_checkpoint(str(tmp_path), config, variables, 4)
  folder = tmp_path / 'in'
  folder.mkdir()
  Image.fromarray(np.zeros((30, 41, 3), np.uint8)).save(folder / 'a.png')
  (folder / 'b.txt').write_text('not an image')
  result = run_main('--mode=predict', '--config=configs/quickstart.py', f'--workdir={tmp_path}',
                    f'--config.predict.input={folder}', '--config.model.resnet.width=8',
                    '--config.model.aspp_features=16', '--config.model.eval_output_stride=8',
                    timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'step 4' in result.stdout and 'b.txt' in result.stdout
  assert sorted(os.listdir(tmp_path / 'predict')) == ['a.png', 'a_overlay.png']
  assert Image.open(tmp_path / 'predict' / 'a.png').size == (41, 30)
