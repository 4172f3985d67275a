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
