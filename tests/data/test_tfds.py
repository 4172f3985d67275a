"""tfds: records written offline from data the tests make, read back as the folder reader reads them."""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from deeplab_jax.data import datasets, normalization, pipeline, tfds_builder
from deeplab_jax.errors import UserError
from tests.conftest import tiny_config
from tests.data import miniatures


def folder_dataset(root):
  """Five examples mixing JPEG and PNG images, palette and greyscale labels, sides 40..56."""
  for k in range(5):
    h, w = 40 + 4 * k, 56 - 2 * k
    ext = 'png' if k == 3 else 'jpg'
    miniatures.save_image(str(root / 'images' / 'train' / f'{k}.{ext}'), miniatures.image(k, h, w))
    miniatures.save_label(str(root / 'labels' / 'train' / f'{k}.png'),
                          miniatures.stripes((0, k % 3, 255, 1), h, w), palette=k % 2 == 0)
  data = tiny_config(str(root)).data
  data.dataset, data.label_dir, data.num_classes = 'folder', 'labels', 3
  data.train_split = data.eval_split = 'train'
  return data


def as_tfds(data, data_dir, name):
  records = data.copy_and_resolve_references()
  records.dataset, records.tfds_name, records.tfds_data_dir = 'tfds', f'deeplab_segmentation/{name}', data_dir
  return records


@pytest.fixture(scope='module')
def built(tmp_path_factory):
  """(folder data config, {file format: tfds data config}) with both record formats written."""
  base = tmp_path_factory.mktemp('tfds')
  data = folder_dataset(base / 'folder')
  out = {}
  for file_format in ('array_record', 'tfrecord'):
    tfds_builder.build(data, str(base / 'records'), f'mini_{file_format}', file_format=file_format,
                       log=lambda _: None)
    out[file_format] = as_tfds(data, str(base / 'records'), f'mini_{file_format}')
  return data, out


@pytest.mark.parametrize('file_format', ['array_record', 'tfrecord'])
def test_records_equal_the_folder_reader(built, file_format):
  data, records = built[0], built[1][file_format]
  folder, split = datasets.read_split(data, 'train'), datasets.read_split(records, 'train')
  assert len(split) == len(folder) == 5 and split.file_format == file_format
  want = list(pipeline.eval_batches(folder, data, global_batch=5))
  got = list(pipeline.eval_batches(split, records, global_batch=5))
  for key in ('image', 'label'):
    np.testing.assert_array_equal(got[0][key], want[0][key])
  assert (want[0]['label'] != 255).sum() > 0  # real content, not all padding


@pytest.mark.parametrize('file_format', ['array_record', 'tfrecord'])
def test_record_stream_is_the_folder_stream_and_a_pure_function_of_seed_and_step(built, file_format):
  data, records = built[0], built[1][file_format]
  folder, split = datasets.read_split(data, 'train'), datasets.read_split(records, 'train')
  expected = pipeline.train_batches(folder, data, seed=3, global_batch=2)
  stream = [next(expected) for _ in range(4)]
  resumed = pipeline.train_batches(split, records, seed=3, global_batch=2, start_step=2)
  for want in stream[2:]:
    got = next(resumed)
    np.testing.assert_array_equal(got['image'], want['image'])
    np.testing.assert_array_equal(got['label'], want['label'])
  first = next(pipeline.train_batches(split, records, seed=3, global_batch=2))
  np.testing.assert_array_equal(first['label'], stream[0]['label'])


def test_synthetic_records_and_their_metadata(tmp_path):
  data = tiny_config(str(tmp_path / 'synthetic')).data
  data.synthetic.num_train, data.synthetic.num_val, data.synthetic.min_size = 3, 2, 40
  data.synthetic.max_size, data.train_split = 50, 'train'
  builder = tfds_builder.build(data, str(tmp_path / 'records'), 'synth', log=lambda _: None)
  assert builder.info.metadata['num_classes'] == 6 and builder.info.splits['val'].num_examples == 2
  records = as_tfds(data, str(tmp_path / 'records'), 'synth')
  want = next(pipeline.eval_batches(datasets.read_split(data, 'val'), data, global_batch=2))
  got = next(pipeline.eval_batches(datasets.read_split(records, 'val'), records, global_batch=2))
  np.testing.assert_array_equal(got['label'], want['label'])
  np.testing.assert_array_equal(got['image'], want['image'])


class OtherKeys(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A dataset with its own feature names, as tfds' catalogue has (cityscapes: image_left, ...)."""
  VERSION = tfds.core.Version('1.0.0')
  code_path = None

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        'image_left': tfds.features.Image(shape=(None, None, 3)),
        'annotations': {'segmentation_label': tfds.features.Image(shape=(None, None, 1))},
        'id': tfds.features.Text()}), disable_shuffling=True)

  def _split_generators(self, dl_manager):
    return {'validation': self._generate_examples()}

  def _generate_examples(self):
    for k in range(2):
      label = miniatures.stripes((7, 26, 0))[..., None]
      yield k, {'image_left': miniatures.image(k), 'annotations': {'segmentation_label': label},
                'id': str(k)}


def test_any_tfds_dataset_with_its_features_named(tmp_path):
  OtherKeys(data_dir=str(tmp_path)).download_and_prepare()
  data = tiny_config().data
  data.dataset, data.tfds_name, data.tfds_data_dir = 'tfds', 'other_keys', str(tmp_path)
  data.eval_split = 'validation'
  with pytest.raises(UserError, match=r"tfds dataset other_keys has no image feature 'image' for the "
                                      r'image \(data.tfds_image_key\); its image features: '
                                      r'annotations/segmentation_label, image_left'):
    datasets.read_split(data, 'validation')
  data.tfds_image_key, data.tfds_label_key = 'image_left', 'annotations/segmentation_label'
  data.label_map, data.num_classes = 'cityscapes', 19
  split = datasets.read_split(data, 'validation')
  batch = next(pipeline.eval_batches(split, data, global_batch=2))
  np.testing.assert_array_equal(batch['label'][0, :40, :56], miniatures.stripes((0, 13, 255)))
  mean, std = normalization.mean_std(data)
  np.testing.assert_allclose(batch['image'][1, :40, :56] * np.float32(std) + np.float32(mean),
                             miniatures.image(1), atol=1e-3)  # PNG-encoded by tfds: lossless
  with pytest.raises(UserError, match=r"has no split 'train'.*its splits: validation"):
    datasets.read_split(data, 'train')


def test_missing_or_unnamed_tfds_datasets_are_one_line(tmp_path):
  data = tiny_config().data
  data.dataset = 'tfds'
  with pytest.raises(UserError, match='data.tfds_name is empty'):
    datasets.read_split(data, 'train')
  data.tfds_name, data.tfds_data_dir = 'no_such_dataset_here', str(tmp_path)
  with pytest.raises(UserError, match=rf"'no_such_dataset_here' not found or unreadable in {tmp_path}"):
    datasets.read_split(data, 'train')


def test_inspect_data_reads_records(built):
  from deeplab_jax.data import inspection
  config = tiny_config()
  config.data = built[1]['tfrecord']
  config.data.class_names = ('a', 'b', 'c')
  lines = []
  assert inspection.inspect_data(config, log=lines.append), lines
  assert lines[0].startswith('== train: 5 images, 0 unreadable')
  assert 'height min/median/max 40 / 48 / 56, width 48 / 52 / 56' in lines[0]


def test_voc_train_aug_records_hold_the_sbd_mat_labels(tmp_path):
  """train_aug from VOC + SBD (.mat labels, which only Python reads) written as records: the record
  stream decodes everything in the graph and equals the file stream."""
  voc_root, sbd_root = miniatures.voc_sbd(str(tmp_path))
  data = tiny_config(voc_root).data
  data.dataset, data.sbd_root, data.num_classes, data.expect_counts = 'voc', sbd_root, 21, False
  data.train_split, data.eval_split, data.label_dir = 'train_aug', 'val', 'SegmentationClass'
  tfds_builder.build(data, str(tmp_path / 'records'), 'aug', splits=['train_aug'], log=lambda _: None)
  records = as_tfds(data, str(tmp_path / 'records'), 'aug')
  files, split = datasets.read_split(data, 'train_aug'), datasets.read_split(records, 'train_aug')
  assert any(p.endswith('.mat') for p in files.label_paths) and len(split) == len(files) == 4
  want = next(pipeline.eval_batches(files, data, global_batch=4))
  got = next(pipeline.eval_batches(split, records, global_batch=4))
  np.testing.assert_array_equal(got['label'], want['label'])
  np.testing.assert_array_equal(got['image'], want['image'])
  assert set(np.unique(got['label'])) == {3, 7, 255}  # VOC's own PNGs (3, border 255) and SBD's 7
