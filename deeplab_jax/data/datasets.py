"""The dataset named by a config: its train and eval splits, with their official sizes checked."""
import os

from etils import epath
import ml_collections
import numpy as np

from deeplab_jax import paths
from deeplab_jax.data import ade20k, cityscapes, folder, labels, palette, reading, synthetic, tfds_source, voc
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError

DATASETS = ('voc', 'cityscapes', 'ade20k', 'folder', 'synthetic', 'tfds')
DEFAULT_LABEL_MAPS = {'cityscapes': 'cityscapes', 'ade20k': 'ade20k'}

# Images per split of the full datasets; checked when data.expect_counts is on, so a partial download
# or a wrong list file fails before training rather than after a week.
OFFICIAL_SIZES = {
    'voc': {'train_aug': 10_582, 'val': 1_449, 'train': 1_464, 'trainval': 2_913},
    'cityscapes': {'train': 2_975, 'val': 500},
    'ade20k': {'training': 20_210, 'validation': 2_000},
}


def read_split(data_cfg: ml_collections.ConfigDict, split: str) -> Split | tfds_source.RecordSplit:
  """One split of data_cfg.dataset, with the label map the dataset (or data.label_map) asks for.

  Raises:
    UserError: naming what is missing, or the path that could not be read (e.g. a gs:// bucket
      without access), in one line.
  """
  try:
    return _read_split(data_cfg, split)
  except paths.io_errors() as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise UserError(f'Cannot read the {data_cfg.dataset} dataset at {data_cfg.root} (data.root) for split '
                    f'{split!r}: {type(e).__name__}: {first}') from None


def _read_split(data_cfg: ml_collections.ConfigDict, split: str) -> Split | tfds_source.RecordSplit:
  name, root = data_cfg.dataset, data_cfg.root
  if name == 'tfds':  # records carry their own label map (data.label_map overrides it)
    return tfds_source.read_split(data_cfg, split)
  if name in ('voc', 'synthetic'):
    result = _voc_split(data_cfg, split)
  elif name == 'cityscapes':
    result = cityscapes.read_split(root, split)
  elif name == 'ade20k':
    result = ade20k.read_split(root, split)
  elif name == 'folder':
    result = folder.read_split(root, split, data_cfg.image_dir, data_cfg.label_dir)
  else:
    raise UserError(f'Unknown dataset {name!r} (config data.dataset); known: {", ".join(DATASETS)}.')
  label_map = data_cfg.label_map or DEFAULT_LABEL_MAPS.get(name, 'identity')
  return Split(result.name, result.image_paths, result.label_paths, label_map)


def _voc_split(data_cfg: ml_collections.ConfigDict, split: str) -> Split:
  """A VOC-layout list; train_aug is built from VOC + SBD unless a train_aug.txt list is present."""
  ready = os.path.join(data_cfg.root, 'ImageSets', 'Segmentation', f'{split}.txt')
  if data_cfg.dataset == 'voc' and split == 'train_aug' and not epath.Path(ready).is_file():
    return voc.read_train_aug(data_cfg.root, data_cfg.sbd_root)
  return voc.read_split(data_cfg.root, split, data_cfg.label_dir)


def check_size(data_cfg: ml_collections.ConfigDict, split: Split) -> None:
  """A UserError if data.expect_counts is on and split differs from its official size."""
  expected = OFFICIAL_SIZES.get(data_cfg.dataset, {}).get(split.name)
  if data_cfg.expect_counts and expected is not None and len(split) != expected:
    raise UserError(f'{data_cfg.dataset} split {split.name!r} under {data_cfg.root} has {len(split)} '
                    f'images; the full dataset has {expected:,}. Complete the download, or pass '
                    '--config.data.expect_counts=False to use a subset on purpose.')


def load_splits(data_cfg: ml_collections.ConfigDict, log=print, check_sizes: bool = True,
                check_labels: bool = True) -> tuple[Split, Split]:
  """(train, eval) splits of data_cfg.dataset; the synthetic dataset is generated on first use.

  check_sizes=False leaves the official-size check (check_size) to the caller. check_labels reads a
  sample of the training labels and logs '!!' warnings (labels.warnings) for a label map that looks
  wrong, e.g. a binary 0/255 mask whose foreground would be ignored.
  """
  if data_cfg.dataset == 'synthetic':
    synthetic.ensure(data_cfg.root, log=log, **data_cfg.synthetic.to_dict())
  splits = read_split(data_cfg, data_cfg.train_split), read_split(data_cfg, data_cfg.eval_split)
  for split in splits if check_sizes else ():
    check_size(data_cfg, split)
  for line in sample_warnings(data_cfg, splits[0]) if check_labels else ():
    log(f'{line} (from {min(SAMPLE, len(splits[0]))} sampled labels of {splits[0].name}; '
        '--mode=inspect_data reads them all)')
  return splits


SAMPLE = 16  # training labels read at the start for sample_warnings


def sample_warnings(data_cfg: ml_collections.ConfigDict, split: Split) -> list[str]:
  """labels.warnings of SAMPLE labels spread over split (unreadable ones are left to the pipeline)."""
  if not getattr(split, 'label_paths', None):
    return []
  table = labels.label_table(split.label_map, data_cfg.num_classes, data_cfg.ignore_label)
  counts, colors = np.zeros(256, np.int64), palette.for_config(data_cfg)
  for i in np.unique(np.linspace(0, len(split) - 1, min(SAMPLE, len(split))).round().astype(int)):
    try:
      raw = reading.read_raw_label(split.label_paths[i], colors=colors)
    except reading.BadExample:
      continue
    if raw.min() >= 0 and raw.max() <= 255:
      counts += np.bincount(raw.reshape(-1).astype(np.int64), minlength=256)
  return labels.warnings(counts, table, data_cfg.num_classes, data_cfg.ignore_label)
