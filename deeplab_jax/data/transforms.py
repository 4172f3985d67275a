"""Joint image/label transforms in TensorFlow, with stateless randomness.

Every random choice is drawn from an explicit seed, so an example's augmentation is a pure function of
(seed, example position) and a resumed run sees exactly the batches an uninterrupted one would.
"""
import numpy as np
import tensorflow as tf
from PIL import Image


def read_label(path) -> np.ndarray:
  """Class-index label [H, W] uint8 from a palette or greyscale PNG (TF would expand a palette to RGB)."""
  path = path.decode() if isinstance(path, bytes) else str(path)
  with Image.open(path) as png:
    if png.mode not in ('P', 'L'):
      raise ValueError(f'{path}: label PNG has mode {png.mode}; expected class indices (a palette or '
                       'greyscale PNG), not a colour-coded RGB mask')
    return np.asarray(png, np.uint8)


def load(image_path: tf.Tensor, label_path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Decoded (image uint8 [H, W, 3], label uint8 [H, W]); an error names a file whose sizes differ."""
  image = tf.io.decode_image(tf.io.read_file(image_path), channels=3, expand_animations=False)
  label = tf.numpy_function(read_label, [label_path], tf.uint8, stateful=False)
  label = tf.ensure_shape(label, [None, None])
  tf.debugging.assert_equal(tf.shape(image)[:2], tf.shape(label), message=tf.strings.join(
      ['image and label sizes differ: ', image_path, ' vs ', label_path]))
  return image, label


def random_scale(image, label, seed, min_scale: float, max_scale: float, step: float):
  """Resize by a scale drawn from {min_scale, min_scale + step, ..., max_scale} (label: nearest)."""
  num = int(round((max_scale - min_scale) / step)) + 1 if step > 0 else 1
  index = tf.random.stateless_uniform([], seed, 0, num, dtype=tf.int32)
  scale = min_scale + step * tf.cast(index, tf.float32)
  size = tf.cast(tf.round(tf.cast(tf.shape(label), tf.float32) * scale), tf.int32)
  image = tf.image.resize(tf.cast(image, tf.float32), size, 'bilinear')
  label = tf.image.resize(label[..., None], size, 'nearest')[..., 0]
  return image, label


def pad_to_size(image, label, height, width, mean, ignore_label: int):
  """Pad bottom/right to at least (height, width): image with the mean pixel, label with ignore."""
  h, w = tf.shape(label)[0], tf.shape(label)[1]
  pads = [[0, tf.maximum(height - h, 0)], [0, tf.maximum(width - w, 0)]]
  mean = tf.constant(mean, tf.float32)
  image = tf.pad(tf.cast(image, tf.float32) - mean, pads + [[0, 0]]) + mean
  label = tf.pad(label, pads, constant_values=ignore_label)
  return image, label


def random_crop(image, label, size: int, seed):
  """The same random size x size window of image and label (both at least that large)."""
  h, w = tf.shape(label)[0], tf.shape(label)[1]
  offsets = tf.random.stateless_uniform([2], seed, 0, 2**30, dtype=tf.int32)
  top, left = offsets[0] % (h - size + 1), offsets[1] % (w - size + 1)
  return image[top:top + size, left:left + size], label[top:top + size, left:left + size]


def random_flip(image, label, seed):
  """Left-right flip of both with probability 1/2."""
  flip = tf.random.stateless_uniform([], seed) < 0.5
  return (tf.cond(flip, lambda: image[:, ::-1], lambda: image),
          tf.cond(flip, lambda: label[:, ::-1], lambda: label))


def normalize(image, mean, std):
  """(image - mean) / std per channel, float32."""
  return (tf.cast(image, tf.float32) - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)
