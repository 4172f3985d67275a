"""Reading and checking one (image, label) pair in plain Python: used inside the tf.data pipeline (via
tf.numpy_function) and by `--mode=inspect_data`, so both report a bad file with the same message.

Pillow releases the GIL while decoding, so several pipeline threads decode in parallel.
"""
import os

import numpy as np
from PIL import Image
import scipy.io

from deeplab_jax.data.labels import INVALID

_INDEX_MODES = ('P', 'L', 'I;16', 'I')  # PNG modes that hold class indices rather than colours


class BadExample(ValueError):
  """An unusable example; the message names the file and what is wrong with it."""


def _text(path) -> str:
  return path.decode() if isinstance(path, bytes) else str(path)


def read_image(path) -> np.ndarray:
  """RGB uint8 [H, W, 3]; grey, CMYK or palette images are converted."""
  path = _text(path)
  try:
    with Image.open(path) as image:
      image.load()  # decode now: a truncated file fails here, not later with a vaguer message
      return np.asarray(image if image.mode == 'RGB' else image.convert('RGB'))
  except (OSError, SyntaxError, ValueError) as e:  # Pillow's UnidentifiedImageError is an OSError
    raise BadExample(f'{path}: corrupt or unreadable image ({e})') from None


def _read_sbd_mat(path: str) -> np.ndarray:
  """GTcls.Segmentation of an SBD cls/<id>.mat file."""
  try:
    gt = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)['GTcls']
    return np.asarray(gt.Segmentation)
  except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
    raise BadExample(f'{path}: not an SBD class annotation with GTcls.Segmentation ({e})') from None


def _read_png(path: str) -> np.ndarray:
  try:
    with Image.open(path) as png:
      if png.mode not in _INDEX_MODES:
        raise BadExample(f'{path}: label has mode {png.mode}, a colour-coded RGB mask; expected class '
                         'indices (a palette or greyscale PNG whose pixel values are the classes)')
      return np.asarray(png)
  except (OSError, SyntaxError) as e:
    raise BadExample(f'{path}: corrupt or unreadable label PNG ({e})') from None


def read_raw_label(path) -> np.ndarray:
  """Stored label values [H, W] of a PNG (palette or greyscale) or an SBD .mat file."""
  path = _text(path)
  return _read_sbd_mat(path) if path.endswith('.mat') else _read_png(path)


def map_label(raw: np.ndarray, table: np.ndarray, path: str) -> np.ndarray:
  """raw [H, W] -> uint8 class indices / ignore via table; any value the table rejects is an error."""
  if raw.dtype == np.uint8 and len(table) == 256:  # the common case: one lookup, one check
    mapped = table[raw]
    if mapped.min() >= 0:
      return mapped.astype(np.uint8)
  raw = raw.astype(np.int64)
  out_of_table = (raw < 0) | (raw >= len(table))
  mapped = table[np.where(out_of_table, 0, raw)]
  bad = out_of_table | (mapped == INVALID)
  if bad.any():
    values = np.unique(raw[bad])
    valid = np.flatnonzero(table != INVALID)
    raise BadExample(f'{path}: label values {values[:10].tolist()} are neither a class nor the ignore '
                     f'label (valid stored values: {_ranges(valid)})')
  return mapped.astype(np.uint8)


def _ranges(values: np.ndarray) -> str:
  """'0..20, 255' for [0, 1, ..., 20, 255]."""
  parts, start = [], None
  for i, v in enumerate(values):
    start = v if start is None else start
    if i + 1 == len(values) or values[i + 1] != v + 1:
      parts.append(str(v) if start == v else f'{start}..{v}')
      start = None
  return ', '.join(parts)


def load_example(image_path, label_path, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(image uint8 [H, W, 3], label uint8 [H, W] of class indices or ignore), checked.

  Raises:
    BadExample: naming the file: unreadable image or label, RGB mask, size mismatch, bad label values.
  """
  image_path, label_path = _text(image_path), _text(label_path)
  image, raw = read_image(image_path), read_raw_label(label_path)
  if raw.ndim != 2 or raw.shape != image.shape[:2]:
    raise BadExample(f'{label_path}: label is {"x".join(map(str, raw.shape))} (HxW) but its image '
                     f'{os.path.basename(image_path)} is {image.shape[0]}x{image.shape[1]}')
  return image, map_label(raw, table, label_path)
