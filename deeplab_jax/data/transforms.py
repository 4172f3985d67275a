"""Joint image/label transforms in TensorFlow, with stateless randomness.

Every random choice is drawn from an explicit seed, so an example's augmentation is a pure function of
(seed, example position) and a resumed run sees exactly the batches an uninterrupted one would.
"""
import numpy as np
import tensorflow as tf

from deeplab_jax.data import reading

# Per-backbone input normalisation: (mean, std) in RGB, applied as (x - mean) / std. 'inception' maps
# [0, 255] to [-1, 1] as the official DeepLab does for Xception and MobileNet checkpoints.
_INCEPTION = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))
NORMALIZATIONS = ('imagenet', 'inception')


def normalization(data) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) for data.normalization; 'imagenet' uses data.mean / data.std (torchvision's)."""
  if data.normalization == 'imagenet':
    return tuple(data.mean), tuple(data.std)
  if data.normalization == 'inception':
    return _INCEPTION
  raise ValueError(f'data.normalization is {data.normalization!r}; expected one of {NORMALIZATIONS}')


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
      lambda i, l: _load_or_placeholder(i, l, table, skip, fill), [image_path, label_path],
      [tf.uint8, tf.uint8, tf.string], stateful=False)
  return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(label, [None, None]), problem


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
