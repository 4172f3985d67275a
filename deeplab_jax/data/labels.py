"""Label maps: how a dataset's stored label values become class indices in [0, num_classes) or ignore.

A map is a 256-entry lookup table applied to every label pixel inside the pipeline (files are never
rewritten); entry -1 marks a stored value that is neither a class nor ignore, which is a data error.

data.label_map is a named map (NAMES) or an explicit mapping of stored values, entries separated by
commas:
    '0:0,255:1'          a binary mask stored 0/255: background 0, foreground 1
    '1-150:0-149'        a range onto a range of the same length (ADE20K's classes)
    '10-20:3'            a range onto one class
    '0:ignore'           a value onto the ignore label (data.ignore_label)
    '*:ignore'           every value no other entry names (without '*', such values are errors)
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
# reduce_zero_label: stored 0 is ignore and 1..N are classes 0..N-1 (ADE20K's convention, any N).
NAMES = ('identity', 'cityscapes', 'ade20k', 'reduce_zero_label')


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


def _reduce_zero_label(num_classes: int, ignore_label: int) -> np.ndarray:
  table = np.full(256, INVALID, np.int16)
  if ignore_label > num_classes:  # a stored ignore value stays ignore (255 in ADE20K-style PNGs)
    table[ignore_label] = ignore_label
  table[0] = ignore_label
  table[1:num_classes + 1] = np.arange(num_classes)
  return table


def _values(text: str, entry: str, low: int, high: int) -> list[int]:
  """[a] for 'a', [a..b] for 'a-b', all in low..high; a UserError naming the entry otherwise."""
  parts = text.split('-')
  try:
    numbers = [int(p) for p in parts]
  except ValueError:
    numbers = []
  if len(numbers) not in (1, 2) or numbers[0] > numbers[-1] or numbers[0] < low or numbers[-1] > high:
    raise UserError(f'data.label_map entry {entry!r}: {text!r} is not a value or a range a-b within '
                    f'{low}..{high}.')
  return list(range(numbers[0], numbers[-1] + 1))


def parse_mapping(text: str, num_classes: int, ignore_label: int) -> np.ndarray:
  """The [256] table of an explicit mapping such as '0:0,255:1' or '1-150:0-149,*:ignore'."""
  table, named, rest = np.full(256, INVALID, np.int16), set(), None
  for entry in (e.strip() for e in text.split(',') if e.strip()):
    if entry.count(':') != 1:
      raise UserError(f'data.label_map entry {entry!r} of {text!r}: expected stored:class, e.g. '
                      "'0:0,255:1', '1-150:0-149' or '*:ignore'.")
    source, target = (s.strip() for s in entry.split(':'))
    if target == 'ignore':
      targets = [ignore_label]
    else:
      targets = _values(target, entry, 0, 255)
      if any(t >= num_classes and t != ignore_label for t in targets):
        raise UserError(f'data.label_map entry {entry!r}: class {max(targets)} is outside 0..'
                        f'{num_classes - 1} (data.num_classes {num_classes}) and is not the ignore label '
                        f'{ignore_label}.')
    if source == '*':
      if len(targets) != 1:
        raise UserError(f"data.label_map entry {entry!r}: '*' maps onto one class or 'ignore'.")
      rest = targets[0]
      continue
    sources = _values(source, entry, 0, 255)
    if len(targets) not in (1, len(sources)):
      raise UserError(f'data.label_map entry {entry!r}: {len(sources)} stored values onto '
                      f'{len(targets)} classes; a range maps onto one class or a range of equal length.')
    if named & set(sources):
      raise UserError(f'data.label_map entry {entry!r}: stored value {min(named & set(sources))} is '
                      'mapped twice.')
    named |= set(sources)
    table[sources] = targets if len(targets) > 1 else targets[0]
  if not named and rest is None:
    raise UserError(f'data.label_map {text!r} maps no stored value.')
  if rest is not None:
    table[table == INVALID] = rest
  return table


def label_table(name: str, num_classes: int, ignore_label: int) -> np.ndarray:
  """[256] int16: stored value -> class index, ignore_label, or INVALID.

  name: one of NAMES or an explicit mapping (see the module docstring).

  Raises:
    UserError: for an unknown map name, a malformed mapping, or a num_classes / ignore_label the map
      cannot honour.
  """
  if not 0 <= ignore_label <= 255 or num_classes > 255:
    raise UserError(f'data.ignore_label {ignore_label} and data.num_classes {num_classes} must fit in '
                    '8-bit label PNGs: ignore_label in 0..255 and num_classes at most 255.')
  if ':' in name:
    return parse_mapping(name, num_classes, ignore_label)
  if name == 'identity':
    return _identity(num_classes, ignore_label)
  if name == 'reduce_zero_label':
    return _reduce_zero_label(num_classes, ignore_label)
  fixed = {'cityscapes': len(CITYSCAPES_CLASSES), 'ade20k': ADE20K_NUM_CLASSES}
  if name not in fixed:
    raise UserError(f'Unknown label map {name!r} (config data.label_map); known: {", ".join(NAMES)}, '
                    "or an explicit mapping such as '0:0,255:1'.")
  if num_classes != fixed[name]:
    raise UserError(f'Label map {name!r} gives {fixed[name]} classes but data.num_classes is '
                    f'{num_classes}; set --config.data.num_classes={fixed[name]}.')
  return _cityscapes(ignore_label) if name == 'cityscapes' else _reduce_zero_label(num_classes,
                                                                                   ignore_label)


IGNORE_SHARE_WARNING = 0.3  # VOC, Cityscapes and ADE20K ignore 5-15% of their pixels


def _stored(values) -> str:
  values = [int(v) for v in values]
  return ', '.join(map(str, values[:8])) + (', ...' if len(values) > 8 else '')


def warnings(raw_counts: np.ndarray, table: np.ndarray, num_classes: int, ignore_label: int,
             class_names=(), every_class: bool = False) -> list[str]:
  """'!!' lines for label histograms that suggest a wrong label map, each naming the cause and fix.

  raw_counts: [256] pixels per stored value. every_class: also flag classes without pixels (for a
  whole training split; a sample may lack rare classes).
  """
  total = raw_counts.sum()
  if not total:
    return []
  present = np.flatnonzero(raw_counts)
  ignored = [v for v in present if table[v] == ignore_label]
  share = raw_counts[ignored].sum() / total
  lines = []
  if set(present.tolist()) == {0, 255} and table[255] == ignore_label:
    lines.append(f'!! stored values are only 0 and 255 (a binary mask) and 255 is the ignore label: the '
                 f'whole foreground ({raw_counts[255] / total:.1%} of the pixels) is ignored. Set '
                 "--config.data.label_map='0:0,255:1' --config.data.num_classes=2.")
  elif share > IGNORE_SHARE_WARNING:
    lines.append(f'!! {share:.1%} of the pixels are ignore (stored values {_stored(ignored)}); if some of '
                 f'them are a class, map them with data.label_map (e.g. \'{ignored[-1]}:1\'), or check '
                 'data.ignore_label.')
  if every_class:
    mapped = table[present]
    empty = [c for c in range(num_classes) if c not in mapped]
    if empty:
      names = [class_names[c] if c < len(class_names) else f'class_{c}' for c in empty]
      lines.append(f'!! {len(empty)} class(es) have no pixels in this split: '
                   f'{", ".join(f"{c} ({n})" for c, n in zip(empty[:8], names))}'
                   f'{", ..." if len(empty) > 8 else ""}; check data.num_classes and data.label_map '
                   f'(stored values present: {_stored(present)}).')
  return lines
