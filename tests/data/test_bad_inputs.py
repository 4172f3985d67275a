"""Every kind of bad input: an error naming the file and the fault, or, with skip_bad_examples, a counted
all-ignore example in the same position."""
import os

import numpy as np
import pytest

from deeplab_jax.data import datasets, pipeline, voc
from deeplab_jax.errors import UserError
from tests.conftest import tiny_config
from tests.data import miniatures


def folder_with(tmp_path, bad: str):
  """A folder dataset of three good examples and one with the named fault, as 'c'."""
  for k, stem in enumerate('abcd'):
    miniatures.save_image(str(tmp_path / 'images' / 'train' / f'{stem}.jpg'), miniatures.image(k))
    miniatures.save_label(str(tmp_path / 'labels' / 'train' / f'{stem}.png'), miniatures.stripes((0, 1)))
  image, label = tmp_path / 'images' / 'train' / 'c.jpg', tmp_path / 'labels' / 'train' / 'c.png'
  if bad == 'corrupt':
    image.write_bytes(image.read_bytes()[:300])  # a truncated download
  elif bad == 'size':
    miniatures.save_label(str(label), miniatures.stripes((0, 1), h=30))
  elif bad == 'values':
    miniatures.save_label(str(label), miniatures.stripes((0, 1, 9)))
  elif bad == 'rgb':
    colour = np.zeros((miniatures.H, miniatures.W, 3)) + (7, 8, 9)
    miniatures.save_image(str(label), colour.astype(np.uint8))
  data = tiny_config(str(tmp_path)).data
  data.dataset, data.num_classes, data.train_split, data.label_dir = 'folder', 2, 'train', 'labels'
  return data, datasets.read_split(data, 'train')


@pytest.mark.parametrize('bad, message', [
    ('corrupt', r'c\.jpg: corrupt or unreadable image'),
    ('size', r'c\.png: label is 30x56 \(HxW\) but its image c\.jpg is 40x56'),
    ('values', r'c\.png: label values \[9\] are neither a class nor the ignore label \(valid stored '
               r'values: 0\.\.1, 255; map them with data.label_map'),
    ('rgb', r'c\.png: label is a colour-coded RGB mask with 1 colour\(s\) not in data.palette, e.g. '
            r'\[\(7, 8, 9\)\]'),
])
def test_bad_input_is_an_error_naming_the_file(tmp_path, bad, message):
  data, split = folder_with(tmp_path, bad)
  with pytest.raises(UserError, match=message):
    list(pipeline.eval_batches(split, data, global_batch=2))
  with pytest.raises(UserError, match=message):
    batches = pipeline.train_batches(split, data, seed=0, global_batch=4)
    next(batches)


@pytest.mark.parametrize('bad', ['corrupt', 'size', 'values', 'rgb'])
def test_skip_flag_counts_bad_examples_and_keeps_positions(tmp_path, bad):
  data, split = folder_with(tmp_path, bad)
  data.skip_bad_examples = True
  batches = pipeline.eval_batches(split, data, global_batch=4, include_index=True)
  batch = next(batches)
  assert batches.num_bad == 1 and list(batches.bad_files.values()) == [1]
  assert 'c.' in next(iter(batches.bad_files))
  assert batch['index'].tolist() == [0, 1, 2, 3]
  assert np.all(batch['label'][2] == 255) and not np.all(batch['label'][0] == 255)
  train = pipeline.train_batches(split, data, seed=0, global_batch=4)
  for _ in range(3):  # three epochs of four: the bad file is read (and counted) once per epoch
    assert next(train)['label'].shape == (4, 48, 48)
  assert train.num_bad == 3 and len(train.bad_files) == 1


def test_missing_split_file_is_named(tmp_path, synthetic_root):
  with pytest.raises(UserError, match='val_typo.txt not found'):
    voc.read_split(synthetic_root, 'val_typo')
  data = tiny_config(str(tmp_path)).data
  data.dataset = 'folder'
  with pytest.raises(UserError, match=f'Folder {tmp_path}/images/train not found'):
    datasets.read_split(data, 'train')


def test_list_file_naming_a_missing_image(tmp_path):
  (tmp_path / 'pairs.txt').write_text('gone.jpg gone.png\n')
  data = tiny_config(str(tmp_path)).data
  data.dataset = 'folder'
  with pytest.raises(UserError, match=f'listed in {tmp_path}/pairs.txt are missing, first: '
                                      f'{tmp_path}{os.sep}gone.jpg'):
    datasets.read_split(data, 'pairs.txt')


def test_mat_file_without_gtcls_is_named(tmp_path):
  import scipy.io

  from deeplab_jax.data import reading
  path = str(tmp_path / 'x.mat')
  scipy.io.savemat(path, {'GTinst': {'Segmentation': np.zeros((4, 4), np.uint8)}})
  with pytest.raises(reading.BadExample, match=r'x\.mat: not an SBD class annotation with GTcls'):
    reading.read_raw_label(path)


def test_cityscapes_and_ade20k_name_what_is_missing(tmp_path):
  root = miniatures.cityscapes(str(tmp_path / 'cs'))
  os.remove(os.path.join(root, 'gtFine', 'val', 'frankfurt', 'frankfurt_000000_000000_gtFine_labelIds.png'))
  data = tiny_config(root).data
  data.dataset, data.num_classes = 'cityscapes', 19
  with pytest.raises(UserError, match='1 label file.*missing, first: .*frankfurt_000000_000000_gtFine'):
    datasets.read_split(data, 'val')
  data.dataset, data.root, data.num_classes = 'ade20k', str(tmp_path / 'cs'), 150
  with pytest.raises(UserError, match='images/training not found.*ADEChallengeData2016'):
    datasets.read_split(data, 'training')


def test_an_unreadable_root_is_one_line_naming_it(tmp_path, monkeypatch):
  """What a gs:// bucket without access raises inside epath (here: a denied local folder)."""
  from etils import epath

  def denied(self):
    raise PermissionError(f'403 access denied to {self}')

  monkeypatch.setattr(type(epath.Path(str(tmp_path))), 'is_dir', denied)
  data = tiny_config(str(tmp_path)).data
  data.dataset = 'folder'
  with pytest.raises(UserError, match=rf"^Cannot read the folder dataset at {tmp_path} \(data.root\) for "
                                      rf"split 'train': PermissionError: 403 access denied to {tmp_path}$"):
    datasets.read_split(data, 'train')


def test_a_complete_looking_file_the_graph_cannot_decode_points_to_inspect_data(tmp_path):
  data, split = folder_with(tmp_path, 'none')
  image = tmp_path / 'images' / 'train' / 'c.jpg'
  content = image.read_bytes()
  image.write_bytes(content[:3] + bytes(200) + content[203:])  # start and end intact, headers gone
  with pytest.raises(UserError, match=r'failed to decode; --mode=inspect_data names it'):
    list(pipeline.eval_batches(split, data, global_batch=4))
  from deeplab_jax.data import inspection, labels
  report = inspection.scan(split, labels.label_table('identity', 2, 255))
  assert len(report.problems) == 1 and 'c.jpg: corrupt or unreadable image' in report.problems[0]
