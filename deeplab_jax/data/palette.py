"""The PASCAL VOC colour map: label value -> RGB, used for label PNGs and for visualisation."""
import numpy as np


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
