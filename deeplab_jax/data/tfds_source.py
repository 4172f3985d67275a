"""data.dataset='tfds': any prepared tensorflow-datasets segmentation dataset as a split of records.

The pipeline needs example i of a split in O(1) (its stream is a pure function of (seed, step), read
in a permuted order), so records are read by index: array_record files directly, TFRecord files
through an index of record offsets built once when the split is opened (12 bytes read per record).
Each record's image and label features are parsed and decoded in the tf.data graph by the same
decoders as the folder pipeline (JPEG/PNG images, greyscale PNG labels), and the label map applied
there too. data.tfds_image_key / tfds_label_key name the features (tfds' cityscapes: 'image_left' and
'segmentation_label'); data.tfds_data_dir is where the dataset was prepared, local or gs://.
"""
import bisect
import dataclasses
import functools
import struct

from etils import epath
import ml_collections
import numpy as np

from deeplab_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class RecordSplit:
  """One split of a prepared tfds dataset: its record files and where example i lies."""
  name: str
  source: str  # 'NAME split SPLIT', for messages
  files: tuple[str, ...]
  lengths: tuple[int, ...]  # examples per file
  file_format: str  # 'array_record' or 'tfrecord'
  image_key: str
  label_key: str
  label_map: str = 'identity'

  def __len__(self) -> int:
    return sum(self.lengths)

  def where(self, index: int) -> str:
    return f'{self.source} example {index}'

  def read(self, index: int) -> bytes:
    """The serialized tf.train.Example of example index."""
    shard = bisect.bisect_right(_starts(self.lengths), index) - 1
    offset = index - _starts(self.lengths)[shard]
    if self.file_format == 'array_record':
      return _array_record(self.files[shard])[offset]
    start, length = _tfrecord_offsets(self.files[shard])[offset]
    with epath.Path(self.files[shard]).open('rb') as f:
      f.seek(start)
      return f.read(length)


@functools.lru_cache(maxsize=None)
def _starts(lengths: tuple[int, ...]) -> list[int]:
  return list(np.cumsum((0,) + lengths[:-1]))


@functools.lru_cache(maxsize=None)
def _array_record(path: str):
  from array_record.python import array_record_data_source
  return array_record_data_source.ArrayRecordDataSource([path])


@functools.lru_cache(maxsize=None)
def _tfrecord_offsets(path: str) -> list[tuple[int, int]]:
  """(start, length) of each record's data in a TFRecord file: [length u64][crc u32][data][crc u32]."""
  offsets, position = [], 0
  with epath.Path(path).open('rb') as f:
    while header := f.read(12):
      if len(header) < 12:
        raise UserError(f'{path}: truncated TFRecord file (a partial header at byte {position}).')
      (length,) = struct.unpack('<Q', header[:8])
      offsets.append((position + 12, length))
      position += 12 + length + 4
      f.seek(position)
  return offsets


def _feature_names(features, prefix: str = '') -> dict:
  """Flattened feature name ('a/b' for nested dicts, as tfds serializes them) -> feature."""
  import tensorflow_datasets as tfds
  names = {}
  for key, feature in features.items():
    if isinstance(feature, tfds.features.FeaturesDict):
      names.update(_feature_names(feature, f'{prefix}{key}/'))
    else:
      names[prefix + key] = feature
  return names


def _check_feature(names: dict, key: str, field: str, what: str, dataset: str) -> None:
  import tensorflow_datasets as tfds
  images = sorted(k for k, f in names.items() if isinstance(f, tfds.features.Image))
  if key not in names or not isinstance(names[key], tfds.features.Image):
    raise UserError(f'tfds dataset {dataset} has no image feature {key!r} for the {what} ({field}); its '
                    f'image features: {", ".join(images) or "none"} (all: {", ".join(sorted(names))}). '
                    f'Set --config.{field}.')


def open_builder(data_cfg: ml_collections.ConfigDict):
  """The prepared tfds builder of data.tfds_name in data.tfds_data_dir; a UserError if there is none."""
  import tensorflow_datasets as tfds
  if not data_cfg.tfds_name:
    raise UserError("data.dataset is 'tfds' but data.tfds_name is empty; set it, e.g. "
                    "--config.data.tfds_name=deeplab_segmentation/my_data (see data.tfds_builder).")
  where = data_cfg.tfds_data_dir or 'the default tfds data_dir'
  try:
    builder = tfds.builder(data_cfg.tfds_name, data_dir=data_cfg.tfds_data_dir or None)
  except Exception as e:  # DatasetNotFoundError, or an unreadable gs:// path: one line, naming both
    raise UserError(f'tfds dataset {data_cfg.tfds_name!r} not found or unreadable in {where} '
                    f'(data.tfds_name, data.tfds_data_dir): {str(e).splitlines()[0]}') from None
  if not builder.info.splits:
    raise UserError(f'tfds dataset {data_cfg.tfds_name!r} is not prepared in {where}: build it first '
                    '(python -m deeplab_jax.data.tfds_builder, or `tfds build` with its manual_dir).')
  return builder


def read_split(data_cfg: ml_collections.ConfigDict, split: str) -> RecordSplit:
  """split of the tfds dataset, with its image and label features checked."""
  builder = open_builder(data_cfg)
  name = data_cfg.tfds_name
  if split not in builder.info.splits:
    raise UserError(f'tfds dataset {name!r} has no split {split!r} (data.train_split / eval_split); '
                    f'its splits: {", ".join(builder.info.splits)}.')
  names = _feature_names(builder.info.features)
  _check_feature(names, data_cfg.tfds_image_key, 'data.tfds_image_key', 'image', name)
  _check_feature(names, data_cfg.tfds_label_key, 'data.tfds_label_key', 'label', name)
  info = builder.info.splits[split]
  file_format = builder.info.file_format.value
  if file_format not in ('array_record', 'tfrecord'):
    raise UserError(f'tfds dataset {name!r} is stored as {file_format}; expected array_record or tfrecord.')
  # Our records keep the label map their source used; a catalogue dataset's is data.label_map's.
  label_map = data_cfg.label_map or (builder.info.metadata or {}).get('label_map', 'identity')
  return RecordSplit(split, f'tfds {name} split {split}', tuple(map(str, info.filepaths)),
                     tuple(info.shard_lengths), file_format, data_cfg.tfds_image_key,
                     data_cfg.tfds_label_key, label_map)
