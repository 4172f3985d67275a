"""Label maps: how a dataset's stored label values become class indices in [0, num_classes) or ignore.

A map is a 256-entry lookup table applied to every label pixel inside the pipeline (files are never
rewritten); entry -1 marks a stored value that is neither a class nor ignore, which is a data error.
"""
import numpy as np

from deeplab_jax.errors import UserError

INVALID = -1

# Cityscapes labelId -> trainId, from cityscapesScripts helpers/labels.py: the 19 evaluated classes get
# 0..18, every other labelId (unlabeled, ego vehicle, ..., trailer) is ignored. labelIds go up to 33.
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
                        25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
CITYSCAPES_NUM_LABEL_IDS = 34
CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
                      'bus', 'train', 'motorcycle', 'bicycle')
ADE20K_NUM_CLASSES = 150
NAMES = ('identity', 'cityscapes', 'ade20k')


def _identity(num_classes: int, ignore_label: int) -> np.ndarray:
  table = np.full(256, INVALID, np.int16)
  table[:num_classes] = np.arange(num_classes)
  table[ignore_label] = ignore_label
  return table


def _cityscapes(ignore_label: int) -> np.ndarray:
  table = np.full(256, INVALID, np.int16)
  table[:CITYSCAPES_NUM_LABEL_IDS] = ignore_label
  for label_id, train_id in CITYSCAPES_TRAIN_IDS.items():
    table[label_id] = train_id
  return table


def _ade20k(ignore_label: int) -> np.ndarray:
  # ADEChallengeData2016 stores 0 for "other" (not evaluated) and 1..150 for the classes.
  table = np.full(256, INVALID, np.int16)
  table[0] = ignore_label
  table[1:ADE20K_NUM_CLASSES + 1] = np.arange(ADE20K_NUM_CLASSES)
  return table


def label_table(name: str, num_classes: int, ignore_label: int) -> np.ndarray:
  """[256] int16: stored value -> class index, ignore_label, or INVALID.

  Raises:
    UserError: for an unknown map name or a num_classes / ignore_label the map cannot honour.
  """
  if not 0 <= ignore_label <= 255 or num_classes > 255:
    raise UserError(f'data.ignore_label {ignore_label} and data.num_classes {num_classes} must fit in '
                    '8-bit label PNGs: ignore_label in 0..255 and num_classes at most 255.')
  if name == 'identity':
    return _identity(num_classes, ignore_label)
  fixed = {'cityscapes': len(CITYSCAPES_CLASSES), 'ade20k': ADE20K_NUM_CLASSES}
  if name not in fixed:
    raise UserError(f'Unknown label map {name!r} (config data.label_map); known: {", ".join(NAMES)}.')
  if num_classes != fixed[name]:
    raise UserError(f'Label map {name!r} gives {fixed[name]} classes but data.num_classes is '
                    f'{num_classes}; set --config.data.num_classes={fixed[name]}.')
  return _cityscapes(ignore_label) if name == 'cityscapes' else _ade20k(ignore_label)
