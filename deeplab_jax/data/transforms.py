"""Joint image/label transforms in TensorFlow, with stateless randomness.

Every random choice is drawn from an explicit seed, so an example's augmentation is a pure function of
(seed, example position) and a resumed run sees exactly the batches an uninterrupted one would.
"""
import struct
import zlib

import numpy as np
import tensorflow as tf

from deeplab_jax.data import reading, sizes

_JPEG_START, _JPEG_END = b'\xff\xd8\xff', b'\xff\xd9'
_PNG_START, _PNG_END = b'\x89PNG\r\n\x1a\n', b'IEND\xaeB`\x82'


def _python_load(image_path, label_path, image_bytes, label_bytes, table, skip: bool, fill, colors):
  """numpy side of load(): a checked pair and '' or, if skip, a 1x1 all-ignore pair and the problem."""
  try:
    image, label = reading.load_example(image_path, label_path, table, colors, image_bytes, label_bytes)
    return image, label, np.bytes_(b'')
  except reading.BadExample as e:
    if not skip:
      raise
    image = np.asarray(fill[0], np.uint8).reshape(1, 1, 3)
    return image, np.full((1, 1), fill[1], np.uint8), np.bytes_(str(e).encode())


def _ends(content, start: bytes, end: bytes):
  """Whether content begins with start and ends with end (a truncated download loses its end)."""
  n = tf.strings.length(content)
  return tf.logical_and(
      tf.logical_and(n > len(start) + len(end), tf.strings.substr(content, 0, len(start)) == start),
      tf.strings.substr(content, tf.maximum(n - len(end), 0), len(end)) == end)


def _png_byte(content, offset: int):
  """The IHDR byte at offset (24: bit depth, 25: colour type) as int32."""
  return tf.cast(tf.io.decode_raw(tf.strings.substr(content, offset, 1), tf.uint8)[0], tf.int32)


def _is_8bit_png(content):
  return tf.logical_and(_ends(content, _PNG_START, _PNG_END), _png_byte(content, 24) == 8)


def _grey_palettes() -> np.ndarray:
  """[257] PLTE chunks (length, type, data, CRC): row n lists n greys, entry i = (i, i, i)."""
  chunks = [b'']
  for n in range(1, 257):
    body = b'PLTE' + bytes(np.repeat(np.arange(n, dtype=np.uint8), 3))
    chunks.append(struct.pack('>I', 3 * n) + body + struct.pack('>I', zlib.crc32(body)))
  return np.asarray(chunks, object)


_GREY_PALETTES = _grey_palettes()


def _palette_as_grey(content):
  """(found, content with its PLTE chunk replaced by greys): TF then decodes a palette PNG's indices.

  TF decodes a palette PNG to its colours; with entry i = (i, i, i) the colour is the index itself.
  """
  head = tf.cast(tf.io.decode_raw(tf.strings.substr(content, 0, 1024), tf.uint8), tf.int32)
  head = tf.concat([head, tf.zeros([4], tf.int32)], 0)  # never empty, whatever the file
  match = tf.reduce_all(tf.stack([head[k:tf.size(head) - 3 + k] for k in range(4)], -1)
                        == tf.constant([80, 76, 84, 69]), -1)  # 'PLTE'
  at = tf.cast(tf.argmax(tf.cast(match, tf.int32)), tf.int32)
  size = tf.reduce_sum(tf.gather(head, tf.maximum(at - 4, 0) + tf.range(4)) * [1 << 24, 1 << 16, 256, 1])
  found = tf.reduce_any(match) & (at >= 37) & (size % 3 == 0) & (size >= 3) & (size <= 768)
  chunk = tf.gather(tf.constant(_GREY_PALETTES, tf.string), tf.where(found, size // 3, 0))
  length = tf.strings.length(content)
  rest_at = tf.where(found, tf.minimum(at + 8 + size, length), length)  # past the chunk's CRC
  rest = tf.strings.substr(content, rest_at, length)
  found &= at + 8 + size <= length
  return found, tf.strings.join([tf.strings.substr(content, 0, tf.maximum(at - 4, 0)), chunk, rest])


def _label_png(content):
  """(decodable by TF as stored values, bytes to decode): 8-bit greyscale PNGs and palette PNGs."""
  kind = _png_byte(content, 25)
  palette_found, grey = _palette_as_grey(content)
  well_formed = _ends(content, _PNG_START, _PNG_END)
  ok = well_formed & (((kind == 0) & (_png_byte(content, 24) == 8)) | ((kind == 3) & palette_found))
  return ok, tf.where(kind == 3, grey, content)


def graph_decodable(image_bytes, label_bytes):
  """(whether TensorFlow decodes this pair as Pillow does, the label bytes to decode).

  A complete JPEG or 8-bit PNG image with an 8-bit greyscale or palette PNG label; 16-bit, 1-bit and
  RGB labels, SBD .mat files, BMP/TIFF images and damaged files take the Python path.
  """
  image_ok = tf.logical_or(_ends(image_bytes, _JPEG_START, _JPEG_END), _is_8bit_png(image_bytes))
  label_ok, label_bytes = _label_png(label_bytes)
  return tf.logical_and(image_ok, label_ok), label_bytes


def decode_label(content):
  """uint8 [H, W] of an 8-bit greyscale PNG or one whose palette _palette_as_grey replaced."""
  return tf.io.decode_png(content, 3)[..., 0]


def decode_image(content):
  """uint8 [H, W, 3] of JPEG (accurate integer DCT, as Pillow) or PNG bytes."""
  is_jpeg = tf.strings.substr(content, 0, len(_JPEG_START)) == _JPEG_START
  return tf.cond(is_jpeg, lambda: tf.io.decode_jpeg(content, 3, dct_method='INTEGER_ACCURATE'),
                 lambda: tf.io.decode_png(content, 3))


def load(image_path, label_path, table: np.ndarray, ignore_label: int, skip: bool = False,
         mean=(0, 0, 0), colors: np.ndarray | None = None) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(image uint8 [H, W, 3], label uint8 [H, W] mapped by table, problem string) of one example.

  JPEG/PNG images with greyscale or palette PNG labels are decoded in the tf.data graph (so decoding
  scales with threads, without the GIL); every other format, and any pair the graph finds wrong (sizes,
  values a table rejects), goes to the Python reader, which decodes it or names the problem. A bad example
  raises an error naming its file, or with skip becomes a 1x1 pair of the mean pixel and the ignore
  label (so it adds nothing to loss or metrics while keeping every later position in place) and a
  non-empty problem string. colors: [K, 3] RGB mask colours (palette.for_config), None to refuse them.
  """
  return load_bytes(image_path, label_path, tf.io.read_file(image_path), tf.io.read_file(label_path),
                    table, ignore_label, skip, mean, colors)


def load_bytes(image_path, label_path, image_bytes, label_bytes, table: np.ndarray, ignore_label: int,
               skip: bool = False, mean=(0, 0, 0), colors: np.ndarray | None = None):
  """load() of contents already read (e.g. from records); the paths only name the files in errors."""
  fill = (np.round(mean).astype(np.uint8), ignore_label)

  def python():
    return tuple(tf.numpy_function(
        lambda *args: _python_load(*args, table, skip, fill, colors),
        [image_path, label_path, image_bytes, label_bytes], [tf.uint8, tf.uint8, tf.string],
        stateful=False))

  decodable, grey_label = graph_decodable(image_bytes, label_bytes)

  def graph():
    image = decode_image(image_bytes)
    raw = decode_label(grey_label)
    mapped = tf.gather(tf.constant(table, tf.int32), tf.cast(raw, tf.int32))
    ok = tf.logical_and(tf.reduce_all(tf.shape(image)[:2] == tf.shape(raw)), tf.reduce_min(mapped) >= 0)
    return tf.cond(ok, lambda: (image, tf.cast(mapped, tf.uint8), tf.constant(b'')), python)

  image, label, problem = tf.cond(decodable, graph, python)
  return tf.ensure_shape(image, [None, None, 3]), tf.ensure_shape(label, [None, None]), problem


def _scale(seed, min_scale: float, max_scale: float, step: float):
  """A scale drawn from {min_scale, min_scale + step, ..., max_scale}."""
  num = int(round((max_scale - min_scale) / step)) + 1 if step > 0 else 1
  index = tf.random.stateless_uniform([], seed, 0, num, dtype=tf.int32)
  return min_scale + step * tf.cast(index, tf.float32)


def scale_pad_crop(image, label, seeds, size, scales: tuple[float, float, float], mean, std,
                   ignore_label: int, as_uint8: bool = False):
  """Random scale, normalise, pad to size (image: mean pixel, label: ignore), random crop of size.

  Only the source window that the crop can cover is resized: at scale 2 that is a quarter of the image,
  so the cost no longer grows with the scale. The window's offset is drawn in source pixels (at scale s
  the crop starts on a multiple of s); image (bilinear) and label (nearest) go through the same resize.

  Args:
    image: [H, W, 3] uint8; label: [H, W] uint8.
    seeds: two stateless seeds, for the scale and the crop offset.
    size: the crop, a side (square) or (height, width).
    scales: (min_scale, max_scale, step).
    as_uint8: leave the image in [0, 255], rounded to uint8 and padded with the rounded mean pixel, for
      the train step to normalise on the device (a quarter of the bytes to send; the rounding moves a
      pixel by at most 0.5 / 255 of the range).

  Returns:
    (image [height, width, 3] float32 normalised by (mean, std), or uint8 if as_uint8;
     label [height, width] uint8).
  """
  height, width = sizes.height_width(size, 'data.crop_size')
  scale = _scale(seeds[0], *scales)
  source = tf.shape(label)
  crop = tf.constant([height, width], tf.float32)
  window = tf.minimum(tf.cast(tf.math.ceil(crop / scale), tf.int32), source)
  offsets = tf.random.stateless_uniform([2], seeds[1], 0, 2**30, dtype=tf.int32) % (source - window + 1)
  top, left = offsets[0], offsets[1]
  image = image[top:top + window[0], left:left + window[1]]
  label = label[top:top + window[0], left:left + window[1]]
  scaled = tf.cast(tf.round(tf.cast(window, tf.float32) * scale), tf.int32)
  image = tf.image.resize(tf.cast(image, tf.float32), scaled, 'bilinear')
  label = resize_nearest(label, scaled)
  if as_uint8:
    image, label = pad_to_size(image, label, height, width, tuple(np.round(mean)), ignore_label)
    image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
  else:
    image = normalize(image, mean, std)
    # Normalised, the mean pixel is 0: pad with zeros, once.
    image, label = pad_to_size(image, label, height, width, (0.0, 0.0, 0.0), ignore_label)
  return image[:height, :width], label[:height, :width]


def _nearest_indices(size_in, size_out):
  """Source index of each output pixel as tf.image.resize(..., 'nearest') picks it (half-pixel
  centres, rounded down): min(floor((i + 0.5) * in / out), in - 1)."""
  scale = tf.cast(size_in, tf.float32) / tf.cast(size_out, tf.float32)
  return tf.minimum(tf.cast(tf.floor((tf.range(size_out, dtype=tf.float32) + 0.5) * scale), tf.int32),
                    size_in - 1)


def resize_nearest(label, size):
  """tf.image.resize(label[..., None], size, 'nearest')[..., 0] of a [H, W] label, equal pixel for
  pixel, as two row gathers (the second of the transpose): on a one-channel uint8 map 1.4 ms against
  7.9-9.5 ms for TF's kernel (482x455 -> 700x900, one thread)."""
  source = tf.shape(label)
  columns = tf.gather(tf.transpose(label), _nearest_indices(source[1], size[1]))
  return tf.gather(tf.transpose(columns), _nearest_indices(source[0], size[0]))


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
