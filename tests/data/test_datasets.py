"""Each dataset's reader on a miniature of its real layout: split contents, label mapping, ignore."""
import os

import numpy as np
import pytest

from deeplab_jax.data import datasets, labels, pipeline, voc
from deeplab_jax.errors import UserError
from tests.conftest import tiny_config
from tests.data import miniatures


def data_config(dataset, root, **overrides):
  data = tiny_config(root).data
  data.dataset, data.expect_counts, data.label_map = dataset, False, ''
  data.mean, data.std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
  for key, value in overrides.items():
    data[key] = value
  return data


def eval_labels(data, split):
  """The labels of every example of split as the eval pipeline gives them (cropped back to H x W)."""
  batches = pipeline.eval_batches(split, data, global_batch=len(split), include_index=True)
  batch = next(batches)
  assert batch['index'].tolist() == list(range(len(split)))
  padding = np.ones(batch['label'].shape[1:], bool)
  padding[:miniatures.H, :miniatures.W] = False
  assert np.all(batch['label'][:, padding] == 255)
  return batch['label'][:, :miniatures.H, :miniatures.W]


def test_voc_sbd_train_aug_is_voc_train_plus_sbd_minus_voc_val(tmp_path):
  voc_root, sbd_root = miniatures.voc_sbd(str(tmp_path))
  data = data_config('voc', voc_root, sbd_root=sbd_root, train_split='train_aug', num_classes=21)
  train, val = datasets.load_splits(data, log=lambda _: None)
  ids = [os.path.splitext(os.path.basename(p))[0] for p in train.image_paths]
  assert ids == ['a', 'b', 'e', 'f'] and len(val) == 2
  # b is annotated by VOC itself: its PNG wins over SBD's .mat; e and f only exist in SBD.
  assert [os.path.basename(p) for p in train.label_paths] == ['a.png', 'b.png', 'e.mat', 'f.mat']
  got = eval_labels(data, train)
  expected_voc = np.full((miniatures.H, miniatures.W), 3)
  expected_voc[:2], expected_voc[-2:] = 255, 255
  np.testing.assert_array_equal(got[0], expected_voc)
  np.testing.assert_array_equal(got[2], np.full_like(got[2], 7))  # read from GTcls.Segmentation


def test_voc_counts_are_checked_against_the_official_sizes(tmp_path):
  voc_root, sbd_root = miniatures.voc_sbd(str(tmp_path))
  data = data_config('voc', voc_root, sbd_root=sbd_root, train_split='train_aug', expect_counts=True)
  with pytest.raises(UserError, match="'train_aug' .* has 4 images; the full dataset has 10,582"):
    datasets.load_splits(data, log=lambda _: None)
  assert datasets.OFFICIAL_SIZES['voc']['val'] == 1449


def test_voc_train_aug_without_sbd_says_where_sbd_goes(tmp_path):
  voc_root, _ = miniatures.voc_sbd(str(tmp_path))
  data = data_config('voc', voc_root, sbd_root=str(tmp_path / 'no_sbd'), train_split='train_aug')
  with pytest.raises(UserError, match='no_sbd/train.txt not found.*SBD'):
    datasets.load_splits(data, log=lambda _: None)


def test_cityscapes_label_ids_become_train_ids(tmp_path):
  root = miniatures.cityscapes(str(tmp_path))
  data = data_config('cityscapes', root, num_classes=19, train_split='train', eval_split='val')
  train, val = datasets.load_splits(data, log=lambda _: None)
  assert len(train) == 3 and len(val) == 1 and train.label_map == 'cityscapes'
  assert all(p.endswith('_gtFine_labelIds.png') for p in train.label_paths)
  assert os.path.basename(train.image_paths[2]).startswith('bochum')
  expected = miniatures.stripes(miniatures.CITYSCAPES_TRAIN_IDS)
  for label in eval_labels(data, train):
    np.testing.assert_array_equal(label, expected)


def test_cityscapes_table_matches_the_official_one():
  table = labels.label_table('cityscapes', 19, 255)
  assert sorted(table[(table >= 0) & (table < 255)].tolist()) == list(range(19))
  assert np.all(table[:34] >= 0) and np.all(table[34:] == labels.INVALID)
  assert table[24] == 11 and table[23] == 10 and table[9] == 255 and table[34] == labels.INVALID


def test_ade20k_zero_is_ignore_and_classes_shift_down(tmp_path):
  root = miniatures.ade20k(str(tmp_path))
  data = data_config('ade20k', root, num_classes=150, train_split='training', eval_split='validation')
  train, val = datasets.load_splits(data, log=lambda _: None)
  assert len(train) == 3 and len(val) == 2 and val.label_map == 'ade20k'
  for label in eval_labels(data, val):
    np.testing.assert_array_equal(label, miniatures.stripes((255, 0, 149)))


def test_label_map_must_agree_with_num_classes(tmp_path):
  with pytest.raises(UserError, match='num_classes=150'):
    labels.label_table('ade20k', 21, 255)


def test_folder_of_images_matched_by_stem(tmp_path):
  for split, stems in (('train', ['x1', 'x2', 'x3']), ('val', ['y1'])):
    for k, stem in enumerate(stems):
      miniatures.save_image(str(tmp_path / 'images' / split / f'{stem}.jpg'), miniatures.image(k))
      miniatures.save_label(str(tmp_path / 'masks' / split / f'{stem}.png'), miniatures.stripes((0, 1, 255)))
  data = data_config('folder', str(tmp_path), label_dir='masks', num_classes=2, train_split='train')
  train, val = datasets.load_splits(data, log=lambda _: None)
  assert [os.path.basename(p) for p in train.label_paths] == ['x1.png', 'x2.png', 'x3.png']
  assert len(val) == 1
  np.testing.assert_array_equal(eval_labels(data, val)[0], miniatures.stripes((0, 1, 255)))
  os.remove(tmp_path / 'masks' / 'train' / 'x2.png')
  with pytest.raises(UserError, match='1 image.* no label PNG .*first: x2.jpg'):
    datasets.load_splits(data, log=lambda _: None)


def test_folder_list_file_of_pairs(tmp_path):
  miniatures.save_image(str(tmp_path / 'img' / 'p.png'), miniatures.image(0))
  miniatures.save_label(str(tmp_path / 'lab' / 'p_mask.png'), miniatures.stripes((2, 255)))
  (tmp_path / 'train.txt').write_text('/img/p.png /lab/p_mask.png\n\nimg/p.png lab/p_mask.png\n')
  data = data_config('folder', str(tmp_path), num_classes=3, train_split='train.txt',
                     eval_split=str(tmp_path / 'train.txt'))
  train, _ = datasets.load_splits(data, log=lambda _: None)
  assert len(train) == 2 and train.name == 'train'
  np.testing.assert_array_equal(eval_labels(data, train)[1], miniatures.stripes((2, 255)))
  (tmp_path / 'bad.txt').write_text('img/p.png\n')
  with pytest.raises(UserError, match='bad.txt line 1: expected `image_path label_path`'):
    datasets.read_split(data_config('folder', str(tmp_path), train_split='bad.txt'), 'bad.txt')


def test_split_keeps_its_fields_for_other_callers(synthetic_root):
  split = voc.read_split(synthetic_root, 'train')
  assert split.label_map == 'identity' and len(split.image_paths) == len(split.label_paths) == 12


def test_palette_from_config():
  from deeplab_jax.data import palette
  data = tiny_config().data
  np.testing.assert_array_equal(palette.for_config(data), palette.voc_palette())
  data.palette = ((1, 2, 3), (250, 251, 252))
  colors = palette.for_config(data)
  assert colors[:2].tolist() == [[1, 2, 3], [250, 251, 252]] and colors[2].tolist() == [0, 128, 0]
  data.palette = ((1, 2),)
  with pytest.raises(UserError, match='RGB triples'):
    palette.for_config(data)
