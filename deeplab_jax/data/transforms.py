"""Joint image/label transforms in TensorFlow, with stateless randomness.

Every random choice is drawn from an explicit seed, so an example's augmentation is a pure function of
(seed, example position) and a resumed run sees exactly the batches an uninterrupted one would.
"""
import numpy as np
import tensorflow as tf

from deeplab_jax.data import reading


def _load_or_placeholder(image_path, label_path, table, skip: bool, fill):
  """numpy side of load(): a checked pair and '' or, if skip, a 1x1 all-ignore pair and the problem."""
  try:
    image, label = reading.load_example(image_path, label_path, table)
    return image, label, np.bytes_(b'')
  except reading.BadExample as e:
    if not skip:
      raise
    image = np.asarray(fill[0], np.uint8).reshape(1, 1, 3)
    return image, np.full((1, 1), fill[1], np.uint8), np.bytes_(str(e).encode())


def load(image_path, label_path, table: np.ndarray, ignore_label: int, skip: bool = False,
         mean=(0, 0, 0)) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(image uint8 [H, W, 3], label uint8 [H, W] mapped by table, problem string) of one example.

  A bad example raises an error naming its file, or with skip becomes a 1x1 pair of the mean pixel and
  the ignore label (so it adds nothing to loss or metrics while keeping every later position in place)
  and a non-empty problem string.
  """
  fill = (np.round(mean).astype(np.uint8), ignore_label)
  image, label, problem = tf.numpy_function(
      lambda img, lab: _load_or_placeholder(img, lab, table, skip, fill), [image_path, label_path],
      [tf.uint8, tf.uint8, tf.string], stateful=False)
  return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(label, [None, None]), problem


def _scale(seed, min_scale: float, max_scale: float, step: float):
  """A scale drawn from {min_scale, min_scale + step, ..., max_scale}."""
  num = int(round((max_scale - min_scale) / step)) + 1 if step > 0 else 1
  index = tf.random.stateless_uniform([], seed, 0, num, dtype=tf.int32)
  return min_scale + step * tf.cast(index, tf.float32)


def scale_pad_crop(image, label, seeds, size: int, scales: tuple[float, float, float], mean, std,
                   ignore_label: int, as_uint8: bool = False):
  """Random scale, normalise, pad to size (image: mean pixel, label: ignore), random size x size crop.

  Only the source window that the crop can cover is resized: at scale 2 that is a quarter of the image,
  so the cost no longer grows with the scale. The window's offset is drawn in source pixels (at scale s
  the crop starts on a multiple of s); image (bilinear) and label (nearest) go through the same resize.

  Args:
    image: [H, W, 3] uint8; label: [H, W] uint8.
    seeds: two stateless seeds, for the scale and the crop offset.
    scales: (min_scale, max_scale, step).
    as_uint8: leave the image in [0, 255], rounded to uint8 and padded with the rounded mean pixel, for
      the train step to normalise on the device (a quarter of the bytes to send; the rounding moves a
      pixel by at most 0.5 / 255 of the range).

  Returns:
    (image [size, size, 3] float32 normalised by (mean, std), or uint8 if as_uint8;
     label [size, size] uint8).
  """
  scale = _scale(seeds[0], *scales)
  source = tf.shape(label)
  window = tf.minimum(tf.cast(tf.math.ceil(size / scale), tf.int32), source)
  offsets = tf.random.stateless_uniform([2], seeds[1], 0, 2**30, dtype=tf.int32) % (source - window + 1)
  top, left = offsets[0], offsets[1]
  image = image[top:top + window[0], left:left + window[1]]
  label = label[top:top + window[0], left:left + window[1]]
  scaled = tf.cast(tf.round(tf.cast(window, tf.float32) * scale), tf.int32)
  image = tf.image.resize(tf.cast(image, tf.float32), scaled, 'bilinear')
  label = tf.image.resize(label[..., None], scaled, 'nearest')[..., 0]
  if as_uint8:
    image, label = pad_to_size(image, label, size, size, tuple(np.round(mean)), ignore_label)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
    return image[:size, :size], label[:size, :size]
  image = normalize(image, mean, std)
  # Normalised, the mean pixel is 0: pad with zeros, once.
  image, label = pad_to_size(image, label, size, size, (0.0, 0.0, 0.0), ignore_label)
  return image[:size, :size], label[:size, :size]


def pad_to_size(image, label, height, width, mean, ignore_label: int):
  """Pad bottom/right to at least (height, width): image with the mean pixel, label with ignore."""
  h, w = tf.shape(label)[0], tf.shape(label)[1]
  pads = [[0, tf.maximum(height - h, 0)], [0, tf.maximum(width - w, 0)]]
  if any(mean):
    mean = tf.constant(mean, tf.float32)
    image = tf.pad(tf.cast(image, tf.float32) - mean, pads + [[0, 0]]) + mean
  else:
    image = tf.pad(tf.cast(image, tf.float32), pads + [[0, 0]])
  label = tf.pad(label, pads, constant_values=ignore_label)
  return image, label


def random_flip(image, label, seed):
  """Left-right flip of both with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed) < 0.5
  return (tf.cond(flip, lambda: image[:, ::-1], lambda: image),
          tf.cond(flip, lambda: label[:, ::-1], lambda: label))


def normalize(image, mean, std):
  """(image - mean) / std per channel, float32."""
  return (tf.cast(image, tf.float32) - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
