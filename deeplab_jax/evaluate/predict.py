"""Predictions for a folder of images (or one image): label PNGs in the dataset palette + overlays.

Images are read as users expect: EXIF orientation applied, greyscale / palette / CMYK converted to
RGB, transparency composited onto white, 16-bit scaled to 8-bit. Files that are not images are
skipped with a warning. Images whose longer side exceeds predict.max_size are predicted by
overlapping tiles, so accelerator memory depends on the tile size and not on the image (the host
holds the image and its [H, W, C] probability sum; PIL refuses decompression bombs, which are skipped).
Smaller images are padded (with the mean pixel) to a few bucketed sizes, so a folder of photos of many
sizes compiles the model a few times, not once per size. The same functions serve
`deeplab_jax.Segmenter`. Inputs and outputs are local paths or gs:// (etils.epath).
"""
import io
import os
from typing import Callable

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image, ImageOps

from deeplab_jax.data import datasets, labels, normalization, palette
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference, visualize
from deeplab_jax.ops import crf
from deeplab_jax.paths import io_errors

# [1, H, W, 3] normalised float32 -> [1, H, W, C] probabilities.
ProbsFn = Callable[[np.ndarray], np.ndarray]
SCORES = ('', 'probabilities', 'logits')


def list_inputs(path: str) -> list[str]:
  """The files of a folder (sorted, not recursive, hidden files skipped), or [path] for one file."""
  source = epath.Path(path)
  if source.is_file():
    return [path]
  if not source.is_dir():
    raise UserError(f'Predict input {path!r} is neither a file nor a folder. Set '
                    '--config.predict.input to an image or a folder of images.')
  names = sorted(p.name for p in source.iterdir() if not p.name.startswith('.'))
  return [os.path.join(path, n) for n in names if (source / n).is_file()]


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
    return read_image(path)
  except UserError as e:
    log(f'warning: skipping {e}')
    return None


def read_image(path: str) -> np.ndarray:
  """uint8 RGB [H, W, 3] of an image file; UserError if it is not a readable image."""
  try:
    with Image.open(io.BytesIO(epath.Path(path).read_bytes())) as picture:
      picture.load()
      return to_rgb(picture)
  except (*io_errors(), ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise UserError(f'{path}: not a readable image ({type(e).__name__}: {str(e)[:120]})') from e


def as_rgb(image) -> np.ndarray:
  """uint8 RGB [H, W, 3] of a PIL image, an image file's path, or an array [H, W], [H, W, 1|3|4].

  Arrays are uint8 or uint16 (scaled to 8 bits); four channels are RGBA, composited onto white.
  Raises UserError for anything else.
  """
  if isinstance(image, Image.Image):
    return to_rgb(image)
  if isinstance(image, (str, os.PathLike)):
    return read_image(os.fspath(image))
  array = np.asarray(image) if hasattr(image, '__array__') else None
  if (array is None or array.dtype not in (np.uint8, np.uint16) or array.ndim not in (2, 3)
      or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)) or min(array.shape[:2]) < 1):
    kind = (f'{array.dtype} array of shape {array.shape}' if array is not None
            else type(image).__name__)
    raise UserError(f'Not an image: {kind}. Pass a PIL image, a path, or a uint8 array [H, W, 3] '
                    '(also [H, W], [H, W, 1], [H, W, 4] RGBA, or uint16).')
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.dtype == np.uint16:
    array = _to_uint8(array, 'I;16')
  return to_rgb(Image.fromarray(np.ascontiguousarray(array)))


# Bucket sides, in units of predict.pad_multiple: 1, 2, 3, then two per octave (4, 6, 8, 12, ...), so
# a side is padded by less than 1.5x and sides up to 1024 at 64 fall in 8 buckets.
def _bucket_units(units: int) -> int:
  bucket = min(units, 3)
  while bucket < units:
    bucket = bucket * 4 // 3 if bucket & (bucket - 1) else bucket * 3 // 2
  return bucket


def padded_side(size: int, multiple: int, corner_aligned: bool, bucketed: bool = True) -> int:
  """The side an image side of `size` is padded to: layers.padded_size's multiple * k (+ 1 when
  corner-aligned), k rounded up to a bucket (1, 2, 3, 4, 6, 8, 12, 16, ...) when bucketed.

  >>> [padded_side(s, 64, False) for s in (40, 130, 300, 500, 700, 1000)]
  [64, 192, 384, 512, 768, 1024]
  """
  units = -(-(size - int(corner_aligned)) // multiple)
  units = _bucket_units(max(units, 1)) if bucketed else max(units, 1)
  return units * multiple + int(corner_aligned)


def _pad(image: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Zero-pads (the mean pixel, after normalisation) bottom/right to padded_side: with corner-aligned
  resizing multiple * k + 1, so every stride's feature grid ends on the last pixel."""
  predict, aligned = config.predict, bool(config.model.upsample_align_corners)
  bucketed = bool(predict.bucket_sizes)
  pad = [padded_side(d, predict.pad_multiple, aligned, bucketed) - d for d in image.shape[:2]]
  return np.pad(image, ((0, pad[0]), (0, pad[1]), (0, 0)))


def predict_probabilities(probs_fn: ProbsFn, image: np.ndarray,
                          config: ml_collections.ConfigDict) -> np.ndarray:
  """Class probabilities [H, W, C] float32 of a uint8 RGB image [H, W, 3] (whole, or by tiles if large)."""
  predict = config.predict
  normalised = normalization.normalize(image, config.data)
  h, w = image.shape[:2]
  if max(h, w) > predict.max_size:
    return inference.tiled_probabilities(probs_fn, normalised, predict.tile_size, predict.tile_overlap,
                                         int(predict.tile_batch))
  return np.asarray(probs_fn(_pad(normalised, config)[None]))[0, :h, :w]


def predict_labels(probs_fn: ProbsFn, image: np.ndarray, config: ml_collections.ConfigDict) -> np.ndarray:
  """Class indices [H, W] uint8 of a uint8 RGB image [H, W, 3] (whole, or by tiles if it is large)."""
  return np.argmax(predict_probabilities(probs_fn, image, config), -1).astype(np.uint8)


def stored_values(data: ml_collections.ConfigDict) -> np.ndarray:
  """[256] uint8: class index -> the label value the dataset stores for it (Cityscapes: train id ->
  label id, 0 -> 7 (road)); values that are no class map to themselves."""
  name = data.label_map or datasets.DEFAULT_LABEL_MAPS.get(data.dataset, 'identity')
  table = labels.label_table(name, data.num_classes, data.ignore_label)
  values = np.arange(256, dtype=np.uint8)
  for value in range(255, -1, -1):  # the smallest stored value of a class wins
    if 0 <= table[value] < data.num_classes:
      values[table[value]] = value
  return values


def scores(probs: np.ndarray, kind: str) -> np.ndarray:
  """float32 [H, W, C]: the probabilities, or their logs ('logits': log-softmax, which equals the
  model's logits up to a per-pixel constant for one scale; for several, the log of their average)."""
  if kind not in SCORES[1:]:
    raise UserError(f'Unknown predict.scores {kind!r}; known: {SCORES[1:]}.')
  probs = probs.astype(np.float32)
  return probs if kind == 'probabilities' else np.log(np.maximum(probs, np.finfo(np.float32).tiny))


def check_options(config: ml_collections.ConfigDict) -> None:
  """UserError for a bad predict.scores or a label map predict.label_ids cannot invert, before any work."""
  if config.predict.scores not in SCORES:
    raise UserError(f'Unknown predict.scores {config.predict.scores!r}; known: {SCORES} (\'\' writes none).')
  if config.predict.label_ids:
    stored_values(config.data)


def write_prediction(out_dir: str, stem: str, image: np.ndarray, labels: np.ndarray,
                     colors: np.ndarray | None = None, values: np.ndarray | None = None) -> str:
  """<stem>.png (palette PNG of class indices, or of values[class] if given) and <stem>_overlay.png
  (image | overlay), in colors ([256, 3], palette.for_config(data); default the VOC colour map)."""
  colors = palette.voc_palette(256) if colors is None else colors
  png_colors = colors
  if values is not None:  # stored value v shows in its class's colour
    png_colors = colors.copy()
    png_colors[values[np.unique(labels)]] = colors[np.unique(labels)]
  label_png = Image.fromarray(labels if values is None else values[labels], mode='P')
  label_png.putpalette(png_colors.reshape(-1).tolist())
  path = os.path.join(out_dir, stem + '.png')
  _save_png(path, label_png)
  side = visualize.side_by_side(image, visualize.overlay(image, labels, palette=colors))
  _save_png(os.path.join(out_dir, stem + '_overlay.png'), Image.fromarray(side))
  return path


def _save_png(path: str, picture: Image.Image) -> None:
  with epath.Path(path).open('wb') as f:
    picture.save(f, 'PNG')


def _stem(path: str, taken: set) -> str:
  """File name without extension; with it if two inputs share a stem (a.jpg, a.png)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  return os.path.basename(path) if stem in taken else stem


def predict_files(probs_fn: ProbsFn, paths: list[str], out_dir: str,
                  config: ml_collections.ConfigDict, log=print) -> list[str]:
  """Predicts each readable image of paths into out_dir (made at the first one); returns the label
  PNGs written. With predict.scores, also <stem>.npy: float32 [H, W, C] probabilities or logits."""
  written, taken, predict = [], set(), config.predict
  colors = palette.for_config(config.data)
  values = stored_values(config.data) if predict.label_ids else None
  kind = predict.scores
  for path in paths:
    image = load_image(path, log)
    if image is None:
      continue
    stem = _stem(path, taken)
    taken.add(stem)
    probs = predict_probabilities(probs_fn, image, config)
    epath.Path(out_dir).mkdir(parents=True, exist_ok=True)
    if kind:
      with epath.Path(out_dir, stem + '.npy').open('wb') as f:
        np.save(f, scores(probs, kind))
    labels_ = np.argmax(probs, -1).astype(np.uint8)
    written.append(write_prediction(out_dir, stem, image, labels_, colors, values))
    log(f'  {path} -> {written[-1]}')
  return written


def make_probs_fn(model, variables: dict, setting: inference.Setting, *,
                  crf_params: crf.CRFParams | None = None, mean=None, std=None,
                  with_plain: bool = False) -> ProbsFn:
  """A jitted [B, H, W, 3] -> [B, H, W, C] probability function (compiled once per input shape).

  Args:
    crf_params: refine the probabilities with this dense CRF; padding (the mean pixel) is left out
      of it. Tiled images are refined tile by tile.
    mean, std: the images' normalisation (config.data), needed with crf_params.
    with_plain: with crf_params, return [B, H, W, 2C]: the model's probabilities, then the refined
      ones, from one model pass.
  """
  logits = inference.model_logits(model)

  def probabilities(v, x):
    probs = inference.probabilities(logits, v, x, setting)
    if crf_params is None:
      return probs
    refined = inference.crf_probabilities(probs, x, ~inference.is_padding(x), mean, std, crf_params)
    return jnp.concatenate([probs, refined], -1) if with_plain else refined

  run = jax.jit(probabilities,
                compiler_options=crf.compiler_options() if crf_params is not None else None)
  return lambda images: run(variables, images)
