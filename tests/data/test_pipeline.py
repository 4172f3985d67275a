"""Synthetic dataset, VOC-layout reader and the tf.data pipeline."""

import numpy as np
from PIL import Image
import pytest
from scipy.ndimage import binary_erosion

from deeplab_jax.data import datasets, normalization, pipeline, sizes, synthetic, voc
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError
from tests.conftest import tiny_config


def data_config(root):
  data = tiny_config(root).data
  data.min_scale, data.max_scale = 0.5, 2.0
  return data


def test_synthetic_layout_and_labels(synthetic_root):
  split = voc.read_split(synthetic_root, 'train')
  assert len(split) == 12 and len(voc.read_split(synthetic_root, 'val')) == 5
  png = Image.open(split.label_paths[0])
  assert png.mode == 'P'
  seen = set()
  for path in split.label_paths:
    seen |= set(np.unique(np.asarray(Image.open(path))).tolist())
  assert seen <= set(range(len(synthetic.CLASS_NAMES))) and len(seen) >= 4
  image = Image.open(split.image_paths[0])
  assert image.size == png.size and image.format == 'JPEG'


def test_synthetic_is_reproducible(tmp_path):
  synthetic.generate(str(tmp_path / 'a'), 2, 1, 40, 50, seed=7, log=lambda _: None)
  synthetic.generate(str(tmp_path / 'b'), 2, 1, 40, 50, seed=7, log=lambda _: None)
  for sub in ('SegmentationClass/synth_000000.png', 'JPEGImages/synth_000002.jpg'):
    assert (tmp_path / 'a' / sub).read_bytes() == (tmp_path / 'b' / sub).read_bytes()


def test_reader_errors_name_the_path(tmp_path, synthetic_root):
  with pytest.raises(UserError, match='does not exist'):
    voc.read_split(str(tmp_path / 'nowhere'), 'train')
  with pytest.raises(UserError, match='train_aug.txt not found'):
    voc.read_split(synthetic_root, 'train_aug')
  (tmp_path / 'ImageSets' / 'Segmentation').mkdir(parents=True)
  (tmp_path / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('img1\n')
  with pytest.raises(UserError, match='img1.jpg'):
    voc.read_split(str(tmp_path), 'train')


def test_train_batches_shapes_and_label_values(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'train')
  batches = pipeline.train_batches(split, data, seed=0, global_batch=4)
  for _ in range(3):
    batch = next(batches)
    assert batch['image'].shape == (4, 48, 48, 3) and batch['label'].shape == (4, 48, 48)
    assert set(np.unique(batch['label'])) <= set(range(6)) | {255}


def test_augmentation_keeps_image_and_label_aligned(tmp_path):
  # Labels are a function of colour: red pixels are class 1, blue class 2; flat colour regions
  # survive scale/crop/flip, so an aligned pair keeps red where label 1 is.
  root = tmp_path / 'aligned'
  for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
    (root / sub).mkdir(parents=True)
  label = np.zeros((64, 80), np.uint8)
  label[:, :40], label[:, 40:] = 1, 2
  label[20:40, 10:30] = 0
  colors = np.array([[0, 255, 0], [255, 0, 0], [0, 0, 255]], np.uint8)
  Image.fromarray(colors[label]).save(root / 'JPEGImages' / 'a.jpg', quality=100)
  Image.fromarray(label, 'L').save(root / 'SegmentationClass' / 'a.png')
  (root / 'ImageSets' / 'Segmentation' / 'train.txt').write_text('a\n')
  data = data_config(str(root))
  data.mean, data.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  batches = pipeline.train_batches(voc.read_split(str(root), 'train'), data, seed=1, global_batch=8)
  batch = next(batches)
  image, labels = batch['image'], batch['label']
  for cls in (0, 1, 2):
    inside = labels == cls
    # Away from boundaries (3 px in), the colour at a class-k pixel is the class colour.
    core = np.stack([binary_erosion(m, iterations=3) for m in inside])
    if core.any():
      np.testing.assert_allclose(image[core].mean(0), colors[cls], atol=12)


def test_stream_is_a_pure_function_of_seed_and_step(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'train')
  first = pipeline.train_batches(split, data, seed=5, global_batch=4)
  stream = [next(first) for _ in range(6)]
  again = pipeline.train_batches(split, data, seed=5, global_batch=4)
  np.testing.assert_array_equal(next(again)['label'], stream[0]['label'])
  resumed = pipeline.train_batches(split, data, seed=5, global_batch=4, start_step=4)
  for expected in stream[4:]:
    batch = next(resumed)
    np.testing.assert_array_equal(batch['image'], expected['image'])
    np.testing.assert_array_equal(batch['label'], expected['label'])
  other_seed = next(pipeline.train_batches(split, data, seed=6, global_batch=4))
  assert not np.array_equal(other_seed['image'], stream[0]['image'])


def test_hosts_read_disjoint_halves_of_each_global_batch(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'train')
  whole = next(pipeline.train_batches(split, data, seed=2, global_batch=4))
  halves = [next(pipeline.train_batches(split, data, seed=2, global_batch=4,
                                        shard=pipeline.Shard(i, 2))) for i in range(2)]
  np.testing.assert_array_equal(np.concatenate([h['label'] for h in halves]), whole['label'])


def test_eval_batches_pad_with_ignore_and_cover_every_image_once(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'val')  # 5 images in batches of 4: three padded slots
  batches = list(pipeline.eval_batches(split, data, global_batch=4))
  assert len(batches) == 2 and all(b['image'].shape == (4, 96, 96, 3) for b in batches)
  labels = np.concatenate([b['label'] for b in batches])
  assert np.all(labels[5:] == 255)
  valid = [(labels[i] != 255).sum() for i in range(5)]
  sizes = [np.asarray(Image.open(p)).size for p in split.label_paths]
  assert valid == sizes  # every pixel of each image, none of the padding


def test_rgb_mask_in_the_palette_decodes_as_its_indices(tmp_path, synthetic_root):
  split = voc.read_split(synthetic_root, 'val')
  rgb = tmp_path / 'rgb.png'
  Image.open(split.label_paths[0]).convert('RGB').save(rgb)  # VOC colours: the default data.palette
  data = data_config(synthetic_root)
  as_rgb = Split('val', split.image_paths[:1], (str(rgb),))
  decoded = next(pipeline.eval_batches(as_rgb, data, global_batch=1))['label'][0]
  indexed = next(pipeline.eval_batches(Split('val', split.image_paths[:1], split.label_paths[:1]), data,
                                       global_batch=1))['label'][0]
  np.testing.assert_array_equal(decoded, indexed)
  data.palette = ((1, 2, 3),) * 6  # colours the mask does not use: the one error, naming the file
  with pytest.raises(UserError, match=r'rgb.png: label is a colour-coded RGB mask with \d+ colour\(s\) '
                                      r'not in data.palette'):
    next(pipeline.eval_batches(as_rgb, data, global_batch=1))


def _position_coded(tmp_path):
  """A folder dataset of one 64x96 PNG whose red/green channels encode x/y and whose label is the
  cell index f(x, y) = (x // 16) + 6 * (y // 16), so alignment can be checked per pixel."""
  h, w = 64, 96
  yy, xx = np.mgrid[0:h, 0:w]
  image = np.stack([xx * 255 / (w - 1), yy * 255 / (h - 1), np.zeros_like(xx)], -1).round()
  Image.fromarray(image.astype(np.uint8)).save(tmp_path / 'p.png')
  Image.fromarray(((xx // 16) + 6 * (yy // 16)).astype(np.uint8), 'L').save(tmp_path / 'p_label.png')
  (tmp_path / 'train.txt').write_text('p.png p_label.png\n')
  data = data_config(str(tmp_path))
  data.dataset, data.num_classes, data.train_split = 'folder', 24, 'train.txt'
  data.mean, data.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  return data, datasets.read_split(data, 'train.txt'), (h, w)


def test_labels_follow_their_pixels_under_scale_crop_and_flip(tmp_path):
  data, split, (h, w) = _position_coded(tmp_path)
  batch = next(pipeline.train_batches(split, data, seed=4, global_batch=16))
  x = batch['image'][..., 0] * (w - 1) / 255  # where each output pixel came from in the source
  y = batch['image'][..., 1] * (h - 1) / 255
  labels = batch['label']
  assert set(np.unique(labels)) <= set(range(24)) | {255}  # nearest-neighbour: no invented values
  # Away from cell borders (bilinear blur, rounding), the label is the cell of the pixel's source.
  clear = ((x % 16 > 2) & (x % 16 < 14) & (y % 16 > 2) & (y % 16 < 14) & (labels != 255))
  assert clear.sum() > 5000
  expected = (np.floor(x / 16) + 6 * np.floor(y / 16)).astype(int)
  np.testing.assert_array_equal(labels[clear], expected[clear])
  flipped = [np.mean(np.diff(x[i], axis=-1)[labels[i][:, 1:] != 255]) < 0 for i in range(16)]
  assert 0 < sum(flipped) < 16  # both orientations occurred, and both stayed aligned


def test_train_shards_partition_each_epoch(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'train')  # 12 images = 3 global batches of 4
  seen = []
  for index in range(2):
    batches = pipeline.train_batches(split, data, seed=9, global_batch=4, include_index=True,
                                     shard=pipeline.Shard(index, 2))
    seen.append(np.concatenate([next(batches)['index'] for _ in range(3)]).tolist())
  assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(12))


def test_eval_shards_partition_the_split(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'val')  # 5 images, global batch 4: two batches, 3 fillers
  seen = []
  for index in range(2):
    batches = pipeline.eval_batches(split, data, global_batch=4, include_index=True,
                                    shard=pipeline.Shard(index, 2))
    indices = np.concatenate([b['index'] for b in batches])
    seen.append([int(i) for i in indices if i >= 0])
  assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(5))


def test_inception_normalisation_maps_to_minus_one_one_and_pads_with_zero(synthetic_root):
  data = data_config(synthetic_root)
  data.normalization = 'inception'
  split = voc.read_split(synthetic_root, 'val')
  batch = next(pipeline.eval_batches(split, data, global_batch=1))
  image = batch['image'][0]
  assert image.min() >= -1 and image.max() <= 1 and image.min() < -0.5 and image.max() > 0.5
  np.testing.assert_array_equal(image[:, 95], 0.0)  # padding: the mean pixel 127.5, normalised
  data.normalization = 'caffe'
  with pytest.raises(UserError, match="'caffe'"):
    next(pipeline.eval_batches(split, data, global_batch=1))


def test_scale_one_crop_is_an_exact_window_of_the_padded_source(tmp_path):
  data, split, (h, w) = _position_coded(tmp_path)
  data.min_scale = data.max_scale = 1.0
  data.crop_size, data.flip = 72, False  # taller than the 64-row source: the bottom rows are padding
  source = np.asarray(Image.open(split.label_paths[0]))
  padded = np.pad(source, [(0, 8), (0, 0)], constant_values=255).astype(int)
  batch = next(pipeline.train_batches(split, data, seed=3, global_batch=6))
  for label in batch['label']:
    windows = [padded[:, left:left + 72] for left in range(w - 72 + 1)]
    assert any(np.array_equal(label, window) for window in windows)


@pytest.mark.parametrize('n', [1, 2, 3, 12, 97, 1000])
def test_permuted_index_is_a_permutation_that_depends_on_the_key(n):
  import tensorflow as tf

  def order(key):
    dataset = tf.data.Dataset.range(n).map(
        lambda i: pipeline.permuted_index(i, n, tf.constant(key, tf.int64)))
    return [int(v) for v in dataset.as_numpy_iterator()]

  first = order([0, 0])
  assert sorted(first) == list(range(n)) and order([0, 0]) == first
  if n >= 12:
    assert order([0, 1]) != first and first != list(range(n))


def test_eval_canvas_of_height_and_width(synthetic_root):
  """data.eval_size=(height, width): a rectangular canvas (Cityscapes: 1025x2049, not 2049x2049)."""
  data = data_config(synthetic_root)
  data.eval_size = (91, 121)
  split = voc.read_split(synthetic_root, 'val')
  batch = next(pipeline.eval_batches(split, data, global_batch=4))
  assert batch['image'].shape == (4, 91, 121, 3)
  for label, path in zip(batch['label'], split.label_paths):
    h, w = np.asarray(Image.open(path)).shape
    np.testing.assert_array_equal(label[:h, :w], np.asarray(Image.open(path)))
    assert np.all(label[h:] == 255) and np.all(label[:, w:] == 255)
  data.eval_size = (91, 40)  # narrower than the images: the one clear error, naming the file
  with pytest.raises(UserError, match=r'data.eval_size 91x40 .*val|data.eval_size 91x40'):
    next(pipeline.eval_batches(split, data, global_batch=1))
  data.eval_size = (91,)
  with pytest.raises(UserError, match=r'data.eval_size is \(91,\); expected a side'):
    next(pipeline.eval_batches(split, data, global_batch=1))


def test_eval_batches_padded_only_to_their_largest_image(synthetic_root):
  """data.eval_padding='batch': each batch as large as its largest image, the same pixels as on the
  canvas at the top left, padding 0 (the normalised mean) and ignore."""
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'val')  # 5 images of 60-90 px sides, batches of 2
  canvas = list(pipeline.eval_batches(split, data, global_batch=2))
  data.eval_padding = 'batch'
  batches = list(pipeline.eval_batches(split, data, global_batch=2, include_index=True))
  shapes = [np.asarray(Image.open(p)).shape for p in split.label_paths]
  assert len(batches) == 3
  for k, (batch, whole) in enumerate(zip(batches, canvas)):
    mine = shapes[2 * k:2 * k + 2]
    h, w = max(s[0] for s in mine), max(s[1] for s in mine)
    assert batch['image'].shape == (2, h, w, 3) and batch['label'].shape == (2, h, w)
    np.testing.assert_array_equal(batch['label'], whole['label'][:, :h, :w])
    np.testing.assert_array_equal(batch['image'], whole['image'][:, :h, :w])
    for row, (ih, iw) in enumerate(mine):
      assert np.all(batch['image'][row, ih:] == 0) and np.all(batch['image'][row, :, iw:] == 0)
  assert list(batches[-1]['index']) == [4, -1] and np.all(batches[-1]['label'][1] == 255)
  # Bucket tables (here: a side d is padded to the next multiple of 7, up to the canvas) pad further
  # in the graph: the canvas' pixels up to the bucket side.
  canvas_h, canvas_w = sizes.height_width(data.eval_size, 'data.eval_size')
  tables = tuple(np.minimum(-(-np.arange(c + 1) // 7) * 7, c) for c in (canvas_h, canvas_w))
  bucketed = list(pipeline.eval_batches(split, data, global_batch=2, bucket_sides=tables))
  for batch, whole, plain in zip(bucketed, canvas, batches):
    h, w = (int(tables[axis][plain['label'].shape[1 + axis]]) for axis in (0, 1))
    assert batch['label'].shape == (2, h, w)
    np.testing.assert_array_equal(batch['label'], whole['label'][:, :h, :w])
    np.testing.assert_array_equal(batch['image'], whole['image'][:, :h, :w])
  assert [b['label'].shape for b in bucketed] != [b['label'].shape for b in batches]
  data.eval_padding = 'largest'
  with pytest.raises(UserError, match=r"data.eval_padding is 'largest'; expected one of"):
    pipeline.eval_batches(split, data, global_batch=2)


def test_cityscapes_configs_evaluate_on_the_official_canvas():
  import importlib
  for name in ('v3_cityscapes', 'v3plus_cityscapes'):
    assert importlib.import_module(f'configs.{name}').get_config().data.eval_size == (1025, 2049)


def test_uint8_stream_normalised_equals_the_float_stream_within_rounding(synthetic_root):
  data = data_config(synthetic_root)
  split = voc.read_split(synthetic_root, 'train')
  mean, std = normalization.mean_std(data)
  floats = next(pipeline.train_batches(split, data, seed=7, global_batch=4))
  raw = next(pipeline.train_batches(split, data, seed=7, global_batch=4, as_uint8=True))
  assert raw['image'].dtype == np.uint8 and raw['label'].dtype == np.uint8
  np.testing.assert_array_equal(raw['label'], floats['label'])
  restored = (raw['image'].astype(np.float32) - np.float32(mean)) / np.float32(std)
  # Rounding to uint8 moves a pixel by <= 0.5 (resized pixels) or |mean - round(mean)| (padding).
  bound = np.max(np.maximum(0.5, np.abs(np.float32(mean) - np.round(mean))) / np.float32(std))
  error = np.abs(restored - floats['image'])
  assert error.max() <= bound + 1e-5
  assert np.abs(raw['image'].astype(np.float32) / 255 - 0.5).max() > 0.3  # not a constant image


def test_rectangular_crops_are_windows_of_the_padded_source(tmp_path):
  """data.crop_size=(height, width): at scale 1 each crop is an exact window, padded where it passes
  the source's edge (72 columns of a 96-wide source, 72 rows of a 64-row one)."""
  data, split, (h, w) = _position_coded(tmp_path)
  data.min_scale = data.max_scale = 1.0
  data.crop_size, data.flip = (72, 40), False
  source = np.pad(np.asarray(Image.open(split.label_paths[0])), [(0, 8), (0, 0)],
                  constant_values=255).astype(int)
  for as_uint8 in (False, True):
    batch = next(pipeline.train_batches(split, data, seed=3, global_batch=4, as_uint8=as_uint8))
    assert batch['image'].shape == (4, 72, 40, 3) and batch['label'].shape == (4, 72, 40)
    for label in batch['label']:
      assert any(np.array_equal(label, source[:, left:left + 40]) for left in range(w - 40 + 1))
  data.crop_size = (72, 0)
  with pytest.raises(UserError, match=r'data.crop_size is \(72, 0\); expected a side'):
    next(pipeline.train_batches(split, data, seed=3, global_batch=4))


def test_nearest_label_resize_equals_tfs_kernel():
  """transforms.resize_nearest (row gathers) picks the pixels tf.image.resize's 'nearest' picks, up and
  down, at the sizes the random scales give and at arbitrary ones."""
  import tensorflow as tf

  from deeplab_jax.data import transforms
  rng = np.random.default_rng(0)
  sizes_in = [(375, 500), (1, 7), (513, 513)] + [tuple(rng.integers(1, 400, 2)) for _ in range(40)]
  for h, w in sizes_in:
    label = rng.integers(0, 256, (h, w)).astype(np.uint8)
    outs = [(round(h * s), round(w * s)) for s in (0.5, 0.75, 1.25, 2.0)] + [tuple(rng.integers(1, 600, 2))]
    for out in outs:
      out = (max(out[0], 1), max(out[1], 1))
      expected = tf.image.resize(label[..., None], out, 'nearest')[..., 0].numpy()
      np.testing.assert_array_equal(transforms.resize_nearest(tf.constant(label), tf.constant(out)).numpy(),
                                    expected, err_msg=f'{(h, w)} -> {out}')
