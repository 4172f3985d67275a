"""Reading and checking one (image, label) pair in plain Python: used inside the tf.data pipeline (via
tf.numpy_function, for the formats TensorFlow cannot decode) and by `--mode=inspect_data`, so both
report a bad file with the same message.

Label files hold stored values: a palette or greyscale PNG (8 or 16 bit), a 1-bit PNG (0/1), an RGB
PNG whose R = G = B (the grey value), an RGB colour-coded mask (decoded through data.palette: the
colour in row k is stored value k), or an SBD .mat file. Files are read through etils.epath, so the
paths may be gs:// as well as local. Pillow releases the GIL while decoding, so several pipeline
threads decode in parallel.
"""
import io
import os

from etils import epath
import numpy as np
from PIL import Image
import scipy.io

from deeplab_jax.data import palette as palette_lib
from deeplab_jax.data.labels import INVALID

_INDEX_MODES = ('P', 'L', 'I;16', 'I', '1')  # PNG modes that hold stored values rather than colours
_COLOUR_MODES = ('RGB', 'RGBA', 'LA', 'PA')


class BadExample(ValueError):
  """An unusable example; the message names the file and what is wrong with it."""


def _text(path) -> str:
  path = path.item() if isinstance(path, np.ndarray) else path  # tf.numpy_function passes 0-d arrays
  return path.decode() if isinstance(path, bytes) else str(path)


def _bytes(content) -> bytes | None:
  return content.item() if isinstance(content, np.ndarray) else content


def read_bytes(path) -> bytes:
  """The file's bytes (local or gs://), or a BadExample naming it."""
  try:
    return epath.Path(_text(path)).read_bytes()
  except (OSError, ValueError) as e:  # tf.io.gfile errors (gs://) derive from OSError too
    raise BadExample(f'{_text(path)}: cannot read ({e})') from None


def read_image(path, content: bytes | None = None) -> np.ndarray:
  """RGB uint8 [H, W, 3]; grey, CMYK or palette images are converted. content: the file's bytes."""
  path = _text(path)
  content = read_bytes(path) if content is None else content
  try:
    with Image.open(io.BytesIO(content)) as image:
      image.load()  # decode now: a truncated file fails here, not later with a vaguer message
      return np.asarray(image if image.mode == 'RGB' else image.convert('RGB'))
  except (OSError, SyntaxError, ValueError) as e:  # Pillow's UnidentifiedImageError is an OSError
    raise BadExample(f'{path}: corrupt or unreadable image ({e})') from None


def _read_sbd_mat(path: str, content: bytes) -> np.ndarray:
  """GTcls.Segmentation of an SBD cls/<id>.mat file."""
  try:
    gt = scipy.io.loadmat(io.BytesIO(content), squeeze_me=True, struct_as_record=False)['GTcls']
    return np.asarray(gt.Segmentation)
  except (OSError, ValueError, KeyError, AttributeError, TypeError) as e:
    raise BadExample(f'{path}: not an SBD class annotation with GTcls.Segmentation ({e})') from None


def _decode_rgb(rgb: np.ndarray, path: str, colors: np.ndarray | None) -> np.ndarray:
  """Stored values of an RGB mask: the grey value if R = G = B everywhere, else via colors."""
  if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
    return rgb[..., 0]
  if colors is None:
    raise BadExample(f'{path}: label is a colour-coded RGB mask; expected class indices (a palette or '
                     'greyscale PNG whose pixel values are the classes), or set data.palette to its '
                     'class colours')
  values, lacking = palette_lib.decode_colors(rgb, colors)
  if lacking:
    raise BadExample(f'{path}: label is a colour-coded RGB mask with {len(lacking)} colour(s) not in '
                     f'data.palette, e.g. {lacking[:3]}; add them to data.palette (row k = class k)')
  return values


def _read_png(path: str, content: bytes, colors: np.ndarray | None) -> np.ndarray:
  try:
    with Image.open(io.BytesIO(content)) as png:
      if png.mode in _INDEX_MODES:
        return np.asarray(png).astype(np.uint8) if png.mode == '1' else np.asarray(png)
      if png.mode not in _COLOUR_MODES:
        raise BadExample(f'{path}: label has mode {png.mode}; expected class indices (a palette or '
                         'greyscale PNG) or an RGB mask')
      return _decode_rgb(np.asarray(png.convert('RGB')), path, colors)
  except (OSError, SyntaxError) as e:
    raise BadExample(f'{path}: corrupt or unreadable label PNG ({e})') from None


def read_raw_label(path, content: bytes | None = None, colors: np.ndarray | None = None) -> np.ndarray:
  """Stored label values [H, W] of a PNG (see the module docstring) or an SBD .mat file.

  content: the file's bytes if already read. colors: [K, 3] uint8 to decode RGB masks with (row k is
  stored value k, palette.for_config); None refuses colour-coded masks.
  """
  path = _text(path)
  content = read_bytes(path) if content is None else content
  return _read_sbd_mat(path, content) if path.endswith('.mat') else _read_png(path, content, colors)


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
                     f'label (valid stored values: {ranges(valid)}; map them with data.label_map, e.g. '
                     f"'{values[0]}:ignore' or '*:ignore')")
  return mapped.astype(np.uint8)


def ranges(values) -> str:
  """'0..20, 255' for [0, 1, ..., 20, 255]."""
  parts, start = [], None
  for i, v in enumerate(values):
    start = v if start is None else start
    if i + 1 == len(values) or values[i + 1] != v + 1:
      parts.append(str(v) if start == v else f'{start}..{v}')
      start = None
  return ', '.join(parts)


def load_example(image_path, label_path, table: np.ndarray, colors: np.ndarray | None = None,
                 image_bytes: bytes | None = None,
                 label_bytes: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(image uint8 [H, W, 3], label uint8 [H, W] of class indices or ignore), checked.

  colors: see read_raw_label. image_bytes, label_bytes: the files' contents if already read.

  Raises:
    BadExample: naming the file: unreadable image or label, unknown colour, size mismatch, bad values.
  """
  image_path, label_path = _text(image_path), _text(label_path)
  image = read_image(image_path, _bytes(image_bytes))
  raw = read_raw_label(label_path, _bytes(label_bytes), colors)
  if raw.ndim != 2 or raw.shape != image.shape[:2]:
    raise BadExample(f'{label_path}: label is {"x".join(map(str, raw.shape))} (HxW) but its image '
                     f'{os.path.basename(image_path)} is {image.shape[0]}x{image.shape[1]}')
  return image, map_label(raw, table, label_path)
