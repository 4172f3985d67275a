"""The dataset named by a config: its train and eval splits, with their official sizes checked."""
import os

import ml_collections

from deeplab_jax.data import ade20k, cityscapes, folder, synthetic, voc
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError

DATASETS = ('voc', 'cityscapes', 'ade20k', 'folder', 'synthetic')
DEFAULT_LABEL_MAPS = {'cityscapes': 'cityscapes', 'ade20k': 'ade20k'}

# Images per split of the full datasets; checked when data.expect_counts is on, so a partial download
# or a wrong list file fails before training rather than after a week.
OFFICIAL_SIZES = {
    'voc': {'train_aug': 10_582, 'val': 1_449, 'train': 1_464, 'trainval': 2_913},
    'cityscapes': {'train': 2_975, 'val': 500},
    'ade20k': {'training': 20_210, 'validation': 2_000},
}


def read_split(data_cfg: ml_collections.ConfigDict, split: str) -> Split:
  """One split of data_cfg.dataset, with the label map the dataset (or data.label_map) asks for."""
  name, root = data_cfg.dataset, data_cfg.root
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
  if data_cfg.dataset == 'voc' and split == 'train_aug' and not os.path.isfile(ready):
    return voc.read_train_aug(data_cfg.root, data_cfg.sbd_root)
  return voc.read_split(data_cfg.root, split, data_cfg.label_dir)


def check_size(data_cfg: ml_collections.ConfigDict, split: Split) -> None:
  """A UserError if data.expect_counts is on and split differs from its official size."""
  expected = OFFICIAL_SIZES.get(data_cfg.dataset, {}).get(split.name)
  if data_cfg.expect_counts and expected is not None and len(split) != expected:
    raise UserError(f'{data_cfg.dataset} split {split.name!r} under {data_cfg.root} has {len(split)} '
                    f'images; the full dataset has {expected:,}. Complete the download, or pass '
                    '--config.data.expect_counts=False to use a subset on purpose.')


def load_splits(data_cfg: ml_collections.ConfigDict, log=print,
                check_sizes: bool = True) -> tuple[Split, Split]:
  """(train, eval) splits of data_cfg.dataset; the synthetic dataset is generated on first use.

  check_sizes=False leaves the official-size check (check_size) to the caller.
  """
  if data_cfg.dataset == 'synthetic':
    synthetic.ensure(data_cfg.root, log=log, **data_cfg.synthetic.to_dict())
  splits = read_split(data_cfg, data_cfg.train_split), read_split(data_cfg, data_cfg.eval_split)
  for split in splits if check_sizes else ():
    check_size(data_cfg, split)
  return splits
