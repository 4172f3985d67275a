"""Synthetic dataset, VOC-layout reader and the tf.data pipeline."""
import os

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import binary_erosion

from deeplab_jax.data import pipeline, synthetic, voc
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


def test_rgb_mask_is_refused_with_its_path(tmp_path, synthetic_root):
  split = voc.read_split(synthetic_root, 'val')
  bad = tmp_path / 'rgb.png'
  Image.open(split.label_paths[0]).convert('RGB').save(bad)
  broken = voc.Split('val', split.image_paths[:1], (str(bad),))
  with pytest.raises(UserError, match='rgb.png.*RGB'):
    next(pipeline.eval_batches(broken, data_config(synthetic_root), global_batch=1))
