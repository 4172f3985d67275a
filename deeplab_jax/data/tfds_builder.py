"""A tensorflow-datasets builder for any dataset deeplab_jax reads: writes its splits as sharded records.

    python -m deeplab_jax.data.tfds_builder --config=configs/quickstart.py --data_dir=DIR --name=NAME \
        [--splits=train,val] [--file_format=array_record|tfrecord]

Every dataset that data.dataset names (folder, synthetic, voc with SBD's train_aug, cityscapes and
ade20k from their manual-download folders) is read by its own reader, so the records hold exactly what
the folder pipeline reads: the image file's own bytes (JPEG/PNG; other formats re-encoded as PNG) and
the stored label values as a greyscale PNG (palette, RGB-mask, 1-bit and SBD .mat labels decoded
first). The label map is applied when reading, as for files; the one the source used is kept in the
metadata. Records are in reader order (no shuffling), so example i of a split is image i of the
reader. Read them back with data.dataset='tfds', data.tfds_name='deeplab_segmentation/NAME',
data.tfds_data_dir=DIR. Nothing is downloaded.
"""
import os

from etils import epath
import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from deeplab_jax.data import datasets, palette, reading
from deeplab_jax.errors import UserError

BUILDER = 'deeplab_segmentation'
_KEPT = (b'\xff\xd8\xff', b'\x89PNG\r\n\x1a\n')  # images whose bytes are stored as they are


class DeeplabSegmentation(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """The splits of one config.data dataset; the builder config's name names the dataset."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Image bytes as stored, labels as stored values, in reader order.'}
  # No checksums file beside the code (nothing is downloaded); tfds would otherwise look for one
  # through importlib_resources, which tensorflow-datasets does not install.
  code_path = None

  def __init__(self, *, data_cfg: ml_collections.ConfigDict, name: str, splits: tuple[str, ...],
               **kwargs):
    self._data_cfg, self._splits = data_cfg, tuple(splits)
    super().__init__(config=tfds.core.BuilderConfig(name=name, description=data_cfg.dataset), **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    data = self._data_cfg
    label_map = data.label_map or datasets.DEFAULT_LABEL_MAPS.get(data.dataset, 'identity')
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3)),
            'label': tfds.features.Image(shape=(None, None, 1), encoding_format='png'),
            'name': tfds.features.Text(),
        }),
        supervised_keys=('image', 'label'),
        disable_shuffling=True,
        metadata=tfds.core.MetadataDict(
            source=data.dataset, label_map=label_map, num_classes=int(data.num_classes),
            ignore_label=int(data.ignore_label), class_names=list(data.class_names)))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download: the readers take local (or gs://) folders
    return {split: self._generate_examples(split) for split in self._splits}

  def _generate_examples(self, split: str):
    source = datasets.read_split(self._data_cfg, split)
    colors = palette.for_config(self._data_cfg)
    for key, (image_path, label_path) in enumerate(zip(source.image_paths, source.label_paths)):
      yield key, example(image_path, label_path, colors)


def example(image_path: str, label_path: str, colors: np.ndarray) -> dict:
  """One record's features; a file the pipeline would refuse is a UserError naming it."""
  try:
    content = reading.read_bytes(image_path)
    image = reading.read_image(image_path, content)
    raw = reading.read_raw_label(label_path, colors=colors)
  except reading.BadExample as e:
    raise UserError(f'Cannot write {image_path} into records: {e}') from None
  if raw.shape != image.shape[:2] or raw.min() < 0 or raw.max() > 255:
    raise UserError(f'Cannot write {label_path} into records: its label is {raw.shape} with values '
                    f'{raw.min()}..{raw.max()}; expected {image.shape[0]}x{image.shape[1]} in 0..255.')
  kept = content.startswith(_KEPT) and image.shape[2] == 3
  return {'image': content if kept else image, 'label': raw.astype(np.uint8)[..., None],
          'name': os.path.basename(image_path)}


def build(data_cfg: ml_collections.ConfigDict, data_dir: str, name: str, splits=None,
          file_format: str = 'array_record', log=print) -> DeeplabSegmentation:
  """Writes data_cfg's splits (default: train and eval split) under data_dir; returns the builder."""
  if data_cfg.dataset == 'tfds':
    raise UserError('data.dataset is already tfds; point the config at the files to write.')
  if data_cfg.dataset == 'synthetic':
    from deeplab_jax.data import synthetic
    synthetic.ensure(data_cfg.root, log=log, **data_cfg.synthetic.to_dict())
  splits = tuple(splits or dict.fromkeys((data_cfg.train_split, data_cfg.eval_split)))
  builder = DeeplabSegmentation(data_cfg=data_cfg, name=name, splits=splits,
                                data_dir=os.fspath(epath.Path(data_dir)), file_format=file_format)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS))
  log(f'Wrote {BUILDER}/{name} ({", ".join(f"{s}: {builder.info.splits[s].num_examples}" for s in splits)}'
      f' examples, {file_format}) to {builder.data_dir}')
  return builder


def main(argv):
  del argv
  from absl import flags
  values = flags.FLAGS
  build(values.config.data, values.data_dir, values.name, values.splits, values.file_format)


if __name__ == '__main__':
  from absl import app, flags
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', 'configs/quickstart.py', 'Config whose data.* names the source.')
  flags.DEFINE_string('data_dir', None, 'tfds data_dir to write into (local or gs://).', required=True)
  flags.DEFINE_string('name', None, 'Name of this dataset (the builder config).', required=True)
  flags.DEFINE_list('splits', None, 'Splits to write; default: data.train_split and data.eval_split.')
  flags.DEFINE_enum('file_format', 'array_record', ['array_record', 'tfrecord'], 'Record format.')
  app.run(main)
