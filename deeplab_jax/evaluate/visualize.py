"""Pictures of predictions: colourised labels, overlays, (image | label | prediction) strips, and a
confusion-matrix heatmap, all as uint8 RGB numpy arrays (drawn with PIL; no plotting library needed).
"""
import numpy as np
from PIL import Image, ImageDraw

from deeplab_jax.data.palette import voc_palette


def colorize(labels: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
  """Class indices [H, W] -> RGB [H, W, 3] uint8 in palette ([256, 3], palette.for_config(data); default
  the PASCAL VOC colour map, where ignore 255 is off-white)."""
  palette = voc_palette(256) if palette is None else palette
  return palette[np.asarray(labels).astype(np.int64) % 256]


def denormalize(image: np.ndarray, mean, std) -> np.ndarray:
  """A normalised image [H, W, 3] back to uint8 RGB."""
  return np.clip(np.asarray(image) * np.asarray(std) + np.asarray(mean), 0, 255).round().astype(np.uint8)


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.5,
            palette: np.ndarray | None = None) -> np.ndarray:
  """image [H, W, 3] uint8 blended with the colourised labels; background (0) is left unblended."""
  blend = (1 - alpha) * image + alpha * colorize(labels, palette)
  return np.where(np.asarray(labels)[..., None] == 0, image, blend).round().astype(np.uint8)


def side_by_side(*pictures: np.ndarray, gap: int = 4) -> np.ndarray:
  """Same-height RGB pictures joined left to right with white gaps."""
  spacer = np.full((pictures[0].shape[0], gap, 3), 255, np.uint8)
  parts = [p for picture in pictures for p in (picture, spacer)][:-1]
  return np.concatenate(parts, axis=1)


def valid_extent(label: np.ndarray, ignore_label: int) -> tuple[int, int]:
  """(height, width) of the part of a padded eval label that holds image pixels (padding: bottom/right)."""
  rows = np.flatnonzero(np.any(label != ignore_label, axis=1))
  cols = np.flatnonzero(np.any(label != ignore_label, axis=0))
  if not rows.size:
    return label.shape
  return int(rows[-1]) + 1, int(cols[-1]) + 1


def eval_triple(image: np.ndarray, label: np.ndarray, prediction: np.ndarray, mean, std,
                ignore_label: int, palette: np.ndarray | None = None) -> np.ndarray:
  """(image | ground truth | prediction) [h, 3w + 8, 3] of one padded eval example, padding cropped."""
  h, w = valid_extent(label, ignore_label)
  return side_by_side(denormalize(image[:h, :w], mean, std), colorize(label[:h, :w], palette),
                      colorize(prediction[:h, :w], palette))


def _blues(fraction: np.ndarray) -> np.ndarray:
  """[...] in [0, 1] -> RGB uint8 from white (0) to dark blue (1)."""
  white, blue = np.array([255, 255, 255.0]), np.array([8, 48, 107.0])
  return (white + np.asarray(fraction)[..., None] * (blue - white)).round().astype(np.uint8)


def confusion_heatmap(confusion: np.ndarray, class_names, cell: int = 0) -> np.ndarray:
  """Row-normalised confusion matrix (rows: label, columns: prediction) as an RGB picture.

  Each row is divided by its label pixel count, so a cell is the fraction of that class predicted as
  the column's class and a perfect model draws a dark diagonal. Class names label the rows; columns
  follow the same order.
  """
  confusion = np.asarray(confusion, np.float64)
  num = len(confusion)
  cell = cell or max(6, min(32, 640 // max(num, 1)))
  fraction = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  cells = np.kron(_blues(fraction), np.ones((cell, cell, 1), np.uint8))  # each entry -> cell x cell
  margin = 8 + 6 * max(len(str(n)) for n in class_names)
  canvas = Image.new('RGB', (margin + num * cell + 4, 14 + num * cell + 4), 'white')
  canvas.paste(Image.fromarray(cells), (margin, 14))
  draw = ImageDraw.Draw(canvas)
  draw.text((margin, 1), 'predicted ->', fill='black')
  if cell >= 10:  # names are unreadable on smaller rows
    for i, name in enumerate(class_names):
      draw.text((2, 14 + i * cell + (cell - 10) // 2), str(name), fill='black')
  return np.asarray(canvas)
