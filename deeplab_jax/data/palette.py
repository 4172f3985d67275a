"""The PASCAL VOC colour map: label value -> RGB, used for label PNGs and for visualisation."""
import numpy as np

from deeplab_jax.errors import UserError


def voc_palette(num_colors: int = 256) -> np.ndarray:
  """[num_colors, 3] uint8; bits of the label value spread over the high bits of R, G and B."""
  palette = np.zeros((num_colors, 3), np.uint8)
  for label in range(num_colors):
    value, color = label, [0, 0, 0]
    for shift in range(7, -1, -1):
      for channel in range(3):
        color[channel] |= ((value >> channel) & 1) << shift
      value >>= 3
    palette[label] = color
  return palette


def for_config(data) -> np.ndarray:
  """[256, 3] uint8: data.palette's colours for its classes, the VOC colour map for every other value."""
  palette = voc_palette()
  if data.palette:
    colors = np.asarray(data.palette, np.int64)
    if (colors.ndim != 2 or colors.shape[1] != 3 or len(colors) > 256 or colors.min() < 0
        or colors.max() > 255):
      raise UserError(f'data.palette must be RGB triples in 0..255 (at most 256), got {data.palette!r}')
    palette[:len(colors)] = colors
  return palette


def decode_colors(rgb: np.ndarray, colors: np.ndarray) -> tuple[np.ndarray, list]:
  """(stored values [H, W] uint8, the RGB triples of rgb [H, W, 3] that colors [K, 3] lacks).

  A colour listed twice decodes to its first row.
  """
  codes = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
  known = (colors[:, 0].astype(np.int32) << 16) | (colors[:, 1].astype(np.int32) << 8) | colors[:, 2]
  unique, first = np.unique(known, return_index=True)
  found = np.minimum(np.searchsorted(unique, codes), len(unique) - 1)
  missing = unique[found] != codes
  lacking = [tuple(int(c >> s) & 255 for s in (16, 8, 0)) for c in np.unique(codes[missing])]
  return first[found].astype(np.uint8), lacking
