"""Predictions for a folder of images (or one image): label PNGs in the dataset palette + overlays.

Images are read as users expect: EXIF orientation applied, greyscale / palette / CMYK converted to
RGB, transparency composited onto white, 16-bit scaled to 8-bit. Files that are not images are
skipped with a warning. Images whose longer side exceeds predict.max_size are predicted by
overlapping tiles, so accelerator memory depends on the tile size and not on the image (the host
holds the image and its [H, W, C] probability sum; PIL refuses decompression bombs, which are skipped).
"""
import os
from typing import Callable

import jax
import ml_collections
import numpy as np
from PIL import Image, ImageOps

from deeplab_jax.data import normalization, palette
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference, visualize
from deeplab_jax.models import layers
from deeplab_jax.ops import crf

# [1, H, W, 3] normalised float32 -> [1, H, W, C] probabilities.
ProbsFn = Callable[[np.ndarray], np.ndarray]


def list_inputs(path: str) -> list[str]:
  """The files of a folder (sorted, not recursive, hidden files skipped), or [path] for one file."""
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise UserError(f'Predict input {path!r} is neither a file nor a folder. Set '
                    '--config.predict.input to an image or a folder of images.')
  names = sorted(n for n in os.listdir(path) if not n.startswith('.'))
  return [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]


def _to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
  """A 16/32-bit integer or float greyscale array -> uint8, its full range preserved.

  'I;16*' modes are 16-bit by definition; for 32-bit 'I' and float 'F' the values tell: floats up to 1
  are taken as [0, 1], integers up to 255 as 8-bit, anything larger as 16-bit.
  """
  peak = array.max(initial=0)
  if mode.startswith('I;16') or peak > 255:
    top = 65535.0
  else:
    top = 1.0 if array.dtype.kind == 'f' and peak <= 1.0 else 255.0
  return np.clip(np.round(array.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)


def to_rgb(picture: Image.Image) -> np.ndarray:
  """A PIL image of any mode -> uint8 RGB [H, W, 3], upright by its EXIF orientation."""
  picture = ImageOps.exif_transpose(picture)
  if picture.mode in ('I', 'I;16', 'I;16B', 'I;16L', 'I;16N', 'F'):
    grey = _to_uint8(np.asarray(picture), picture.mode)
    return np.repeat(grey[..., None], 3, axis=-1)
  if picture.mode in ('RGBA', 'LA', 'PA') or 'transparency' in picture.info:
    rgba = picture.convert('RGBA')
    white = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, rgba).convert('RGB'))
  return np.asarray(picture.convert('RGB'))


def load_image(path: str, log=print) -> np.ndarray | None:
  """uint8 RGB [H, W, 3] of an image file, or None (with a warning) if it is not a readable image."""
  try:
    with Image.open(path) as picture:
      picture.load()
      return to_rgb(picture)
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    log(f'warning: skipping {path}: not a readable image ({type(e).__name__}: {str(e)[:120]})')
    return None


def _pad_to_multiple(image: np.ndarray, multiple: int, corner_aligned: bool) -> np.ndarray:
  """Zero-pad (the mean pixel, after normalisation) bottom/right to sides of layers.padded_size:
  multiple * k + 1 when corner-aligned (every stride's feature grid then ends on the last pixel),
  multiple * k otherwise."""
  h, w = image.shape[:2]
  pad = [layers.padded_size(d, multiple, corner_aligned) - d for d in (h, w)]
  return np.pad(image, ((0, pad[0]), (0, pad[1]), (0, 0)))


def predict_labels(probs_fn: ProbsFn, image: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Class indices [H, W] uint8 of a uint8 RGB image [H, W, 3] (whole, or by tiles if it is large)."""
  data, predict = config.data, config.predict
  normalised = normalization.normalize(image, data)
  h, w = image.shape[:2]
  if max(h, w) > predict.max_size:
    probs = inference.tiled_probabilities(probs_fn, normalised, predict.tile_size, predict.tile_overlap)
  else:
    padded = _pad_to_multiple(normalised, predict.pad_multiple, config.model.upsample_align_corners)
    probs = np.asarray(probs_fn(padded[None]))[0, :h, :w]
  return np.argmax(probs, -1).astype(np.uint8)


def write_prediction(out_dir: str, stem: str, image: np.ndarray, labels: np.ndarray,
                     colors: np.ndarray | None = None) -> str:
  """<stem>.png (palette PNG of class indices) and <stem>_overlay.png (image | overlay), in colors
  ([256, 3], palette.for_config(data); default the PASCAL VOC colour map)."""
  colors = palette.voc_palette(256) if colors is None else colors
  label_png = Image.fromarray(labels, mode='P')
  label_png.putpalette(colors.reshape(-1).tolist())
  path = os.path.join(out_dir, stem + '.png')
  label_png.save(path)
  side = visualize.side_by_side(image, visualize.overlay(image, labels, palette=colors))
  Image.fromarray(side).save(os.path.join(out_dir, stem + '_overlay.png'))
  return path


def _stem(path: str, taken: set) -> str:
  """File name without extension; with it if two inputs share a stem (a.jpg, a.png)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  return os.path.basename(path) if stem in taken else stem


def predict_files(probs_fn: ProbsFn, paths: list[str], out_dir: str,
                  config: ml_collections.ConfigDict, log=print) -> list[str]:
  """Predicts each readable image of paths into out_dir; returns the label PNGs written."""
  os.makedirs(out_dir, exist_ok=True)
  written, taken = [], set()
  for path in paths:
    image = load_image(path, log)
    if image is None:
      continue
    stem = _stem(path, taken)
    taken.add(stem)
    written.append(write_prediction(out_dir, stem, image, predict_labels(probs_fn, image, config),
                                    palette.for_config(config.data)))
    log(f'  {path} -> {written[-1]}')
  return written


def make_probs_fn(model, variables: dict, setting: inference.Setting, *,
                  crf_params: crf.CRFParams | None = None, mean=None, std=None) -> ProbsFn:
  """A jitted [1, H, W, 3] -> [1, H, W, C] probability function (compiled once per input size).

  Args:
    crf_params: refine the probabilities with this dense CRF; padding (the mean pixel) is left out
      of it. Tiled images are refined tile by tile.
    mean, std: the images' normalisation (config.data), needed with crf_params.
  """
  logits = inference.model_logits(model)

  def probabilities(v, x):
    probs = inference.probabilities(logits, v, x, setting)
    if crf_params is None:
      return probs
    return inference.crf_probabilities(probs, x, ~inference.is_padding(x), mean, std, crf_params)

  run = jax.jit(probabilities,
                compiler_options=crf.compiler_options() if crf_params is not None else None)
  return lambda images: run(variables, images)
