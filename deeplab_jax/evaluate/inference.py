"""Multi-scale and flip inference, as DeepLab v2/v3 evaluate: softmax averaged at the input resolution.

Each scale s resizes the input to layers.scaled_size (corner-aligned: int((H - 1) * s + 1), as the
official DeepLab's eval scales, 513 at 0.5 -> 257; half-pixel: round(s * H)), runs the model there,
and resizes the class probabilities back to H x W with the same convention; with flip the same is
done on the left-right mirrored input and the result is mirrored back. The average of all these
probabilities is the prediction. Also: settings
parsed from strings ('0.5,0.75,1+flip'), sliding-window tiles for images too large to run whole, and
the dense CRF refinement of DeepLab v1/v2 applied to the resulting probabilities.
"""
import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from deeplab_jax.errors import UserError
from deeplab_jax.models import layers
from deeplab_jax.ops import crf

# (variables, images [B, H, W, 3] normalised) -> logits [B, H, W, C] at the input size.
LogitsFn = Callable[[dict, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class Setting:
  """One inference setting: the input scales and whether flipped inputs are added.

  corner_aligned: resize sizes and pixels as the model's model.upsample_align_corners (corner-aligned:
  the official DeepLab's geometry; False: half-pixel, PyTorch's). Not part of the tag.
  """
  scales: tuple[float, ...] = (1.0,)
  flip: bool = False
  corner_aligned: bool = False

  @property
  def tag(self) -> str:
    """A file-name-safe name, e.g. 's0.5-0.75-1_flip'."""
    return 's' + '-'.join(f'{s:g}' for s in self.scales) + ('_flip' if self.flip else '')

  @property
  def is_plain(self) -> bool:
    return tuple(self.scales) == (1.0,) and not self.flip


def model_logits(model) -> LogitsFn:
  """The LogitsFn of a DeepLab module (its 'logits' output)."""
  return lambda variables, images: model.apply(variables, images)['logits']


def parse_setting(text: str, corner_aligned: bool = False) -> Setting:
  """'0.5,0.75,1+flip' -> Setting((0.5, 0.75, 1.0), True); raises UserError on a bad string."""
  body, _, suffix = text.strip().partition('+')
  try:
    scales = tuple(float(s) for s in body.split(',') if s.strip())
  except ValueError:
    scales = ()
  if not scales or any(s <= 0 for s in scales) or suffix not in ('', 'flip'):
    raise UserError(f'Bad inference setting {text!r} (config eval.extra_settings): expected positive '
                    "comma-separated scales, optionally followed by '+flip', e.g. '0.5,1,1.5+flip'.")
  return Setting(scales, suffix == 'flip', corner_aligned)


def probabilities(logits_fn: LogitsFn, variables: dict, images: jax.Array,
                  setting: Setting = Setting()) -> jax.Array:
  """Class probabilities [B, H, W, C] of images [B, H, W, 3], averaged over scales (and flips).

  With the plain setting ((1.0,), no flip) this is softmax(logits_fn(variables, images)).
  """
  size, aligned = images.shape[1:3], setting.corner_aligned
  total, count = 0.0, 0
  for scale in setting.scales:
    scaled = images if scale == 1 else layers.resize_bilinear(  # scale 1 keeps symbolic sizes
        images, layers.scaled_size(size, scale, aligned), aligned)
    flips = (False, True) if setting.flip else (False,)
    for flipped in flips:
      x = scaled[:, :, ::-1] if flipped else scaled
      probs = jax.nn.softmax(logits_fn(variables, x).astype(jnp.float32), axis=-1)
      probs = probs[:, :, ::-1] if flipped else probs
      total, count = total + layers.resize_bilinear(probs, size, aligned), count + 1
  return total / count


def is_padding(images: jax.Array) -> jax.Array:
  """[B, H, W] bool: pixels of normalised images [B, H, W, 3] that are exactly the mean pixel.

  Eval and predict pad with the mean pixel (0 after normalisation). A uint8 pixel normalises to
  exactly 0 only if the mean is a whole number, and then it merely skips the CRF.
  """
  return jnp.all(images == 0, axis=-1)


def crf_probabilities(probs: jax.Array, images: jax.Array, valid: jax.Array, mean, std,
                      params: crf.CRFParams) -> jax.Array:
  """Dense-CRF-refined probabilities [B, H, W, C].

  Args:
    probs: [B, H, W, C] class probabilities at the image resolution.
    images: [B, H, W, 3] normalised images; de-normalised with (mean, std) and rounded back to the
      0..255 RGB values the CRF's colour std is measured in.
    valid: [B, H, W] bool, False on padding (which then takes no part in the CRF).
    mean, std: per-channel normalisation of the images.
    params: CRF settings.
  """
  rgb = jnp.clip(jnp.round(images * jnp.float32(std) + jnp.float32(mean)), 0., 255.)
  # The CRF's unary is -log(softmax(logits)) and softmax(log p) = p: log-probabilities are logits.
  logits = jnp.log(jnp.maximum(probs, jnp.finfo(jnp.float32).tiny))
  return crf.dense_crf(logits, rgb, params, valid)


def _tile_starts(length: int, tile: int, stride: int) -> list[int]:
  """Window starts covering [0, length) with windows of `tile`, the last one flush with the end."""
  if length <= tile:
    return [0]
  starts = list(range(0, length - tile, stride))
  return starts + [length - tile]


def chunk_sizes(count: int, batch: int) -> list[int]:
  """Sizes that split `count` items into runs of `batch`, the rest in falling powers of two, so a
  batched function compiles for at most batch and log2(batch) + 1 smaller shapes, whatever the count.

  >>> chunk_sizes(13, 8), chunk_sizes(13, 6), chunk_sizes(2, 8)
  ([8, 4, 1], [6, 6, 1], [2])
  """
  sizes, rest = [batch] * (count // batch), count % batch
  while rest:
    sizes.append(1 << (rest.bit_length() - 1))
    rest -= sizes[-1]
  return sizes


def groups(items, size: int):
  """Lists of `size` consecutive items of an iterable (the last one shorter), taken as they are needed."""
  items = iter(items)
  while group := [x for _, x in zip(range(size), items)]:
    yield group


def batched_probabilities(probs_fn: Callable[[np.ndarray], np.ndarray], images, batch: int):
  """Yields the probabilities [h, w, C] of equally shaped inputs [h, w, 3] (an iterable), computed
  `batch` at a time (a last shorter group in chunk_sizes) and in their order; one group held at once."""
  for group in groups(images, batch):
    start = 0
    for size in chunk_sizes(len(group), batch):
      yield from np.asarray(probs_fn(np.stack(group[start:start + size])))
      start += size


def tiled_probabilities(probs_fn: Callable[[np.ndarray], np.ndarray], image: np.ndarray,
                        tile: int | tuple[int, int], overlap: float, batch: int = 1) -> np.ndarray:
  """Probabilities [H, W, C] of a large normalised image [H, W, 3] from overlapping windows.

  Every window is run whole (the last row/column of windows is moved flush with the image edge;
  windows of images smaller than a tile are zero-padded, i.e. with the mean pixel) and overlapping
  probabilities are averaged, so accelerator memory depends on the tile size and batch only (the host
  holds the [H, W, C] sum).

  Args:
    probs_fn: [B, tile_h, tile_w, 3] -> [B, tile_h, tile_w, C] probabilities.
    image: normalised image [H, W, 3].
    tile: window side in pixels, or (height, width).
    overlap: fraction of a window shared with its neighbour (along each side), in [0, 1).
    batch: windows per probs_fn call (see chunk_sizes for the last ones).
  """
  height, width = image.shape[:2]
  tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
  boxes = [(top, left, min(tile_h, height - top), min(tile_w, width - left))
           for top in _tile_starts(height, tile_h, max(1, int(tile_h * (1 - overlap))))
           for left in _tile_starts(width, tile_w, max(1, int(tile_w * (1 - overlap))))]
  windows = (np.pad(image[top:top + h, left:left + w], ((0, tile_h - h), (0, tile_w - w), (0, 0)))
             for top, left, h, w in boxes)
  total, count = None, np.zeros((height, width, 1), np.float32)
  for (top, left, h, w), probs in zip(boxes, batched_probabilities(probs_fn, windows, batch)):
    if total is None:
      total = np.zeros((height, width, probs.shape[-1]), np.float32)
    total[top:top + h, left:left + w] += probs[:h, :w]
    count[top:top + h, left:left + w] += 1
  return total / count
