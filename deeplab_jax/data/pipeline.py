"""tf.data pipelines: an endless, deterministic training stream and a finite, padded eval pass.

Positions: training example number g (counted over the whole run and all hosts) belongs to step
g // global_batch; host p of P reads positions [step * G + p * L, step * G + (p + 1) * L) with
L = G / P. Example g is element (g mod N) of the permutation of epoch g // N, drawn from (seed, epoch),
and is augmented with randomness drawn from (seed, g). The stream is thus a pure function of
(seed, step): resuming at step k starts at position k * G at no cost.

Bad files: by default the first one read stops the run with an error naming it. With
data.skip_bad_examples it is replaced in place by an all-ignore example (mean-pixel image) rather than
dropped: dropping would shift every later position and break the (seed, step) contract, while an
all-ignore example contributes nothing to loss or metrics. `Batches.num_bad` counts them, and each bad
file is logged the first time. An up-front scan of every file would also be deterministic but costs a
full decode of the dataset before step 1; `--mode=inspect_data` is that scan, on demand.
"""
import dataclasses
import functools
import re

from absl import logging
import ml_collections
import numpy as np
import tensorflow as tf

from deeplab_jax.data import labels, normalization, palette, sizes, tfds_source, transforms
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError

# The pipeline runs on the host: keep TensorFlow off any accelerator JAX uses.
tf.config.set_visible_devices([], 'GPU')


@dataclasses.dataclass(frozen=True)
class Shard:
  """Which part of a global batch this process reads."""
  index: int = 0
  count: int = 1

  def local_batch(self, global_batch: int) -> int:
    if global_batch % self.count:
      raise ValueError(f'global batch {global_batch} is not divisible by {self.count} processes')
    return global_batch // self.count


def _positions(first_batch: int, num_batches: int | None, global_batch: int, shard: Shard):
  """This shard's example positions of batches first_batch, first_batch + 1, ... (endless if None)."""
  local = shard.local_batch(global_batch)
  stop = first_batch + num_batches if num_batches is not None else np.iinfo(np.int64).max
  starts = tf.data.Dataset.range(first_batch, stop).map(
      lambda b: b * global_batch + shard.index * local)
  return starts.flat_map(lambda s: tf.data.Dataset.range(s, s + local))


class Batches:
  """Iterator of numpy batches {'image', 'label'[, 'index']}; counts examples replaced as bad.

  With data.skip_bad_examples a bad example stays in its position as an all-ignore pair (so the stream
  remains a pure function of (seed, step)); each is counted here and its file logged once.
  """

  def __init__(self, dataset: tf.data.Dataset):
    self._iterator = dataset.prefetch(2).as_numpy_iterator()
    self.num_bad = 0  # bad examples replaced so far (a bad file counts once per time it is read)
    self.bad_files = {}  # problem message -> times seen

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    if self._iterator is None:
      raise StopIteration
    try:
      batch = next(self._iterator)
    except tf.errors.OpError as e:  # a bad file: a UserError naming it, not a TF traceback
      missing = isinstance(e, tf.errors.NotFoundError)  # a file gone since the split was read
      raise UserError(f'Bad input data: {_first_line(e.message, missing)}') from None
    for problem in batch.pop('problem'):
      if problem:
        self._count(problem.decode())
    return batch

  def _count(self, problem: str):
    self.num_bad += 1
    if problem not in self.bad_files:
      logging.warning('Skipping a bad example (data.skip_bad_examples), %d so far: %s', self.num_bad,
                      problem)
    self.bad_files[problem] = self.bad_files.get(problem, 0) + 1

  def close(self):
    """Frees the tf.data iterator now (not at interpreter shutdown, where it can deadlock)."""
    self._iterator = None


def _first_line(message: str, missing: bool = False) -> str:
  """The reader's own message out of a numpy_function error ('BadExample: <path>: ...' + traceback),
  or TF's first line without its '{{function_node ...}}' prefix (missing: a file read failed because
  it no longer exists, which TF's message names)."""
  for line in message.splitlines():
    if 'BadExample: ' in line:
      return line.split('BadExample: ', 1)[1]
    if 'assertion failed: [' in line:  # a tf.debugging check: its message, without TF's wrapping
      return line.split('assertion failed: [', 1)[1].split('] [', 1)[0]
  first = re.sub(r'^\{\{function_node [^}]*\}\}\s*', '', message.splitlines()[0])
  if missing:
    return first
  if any(word in first for word in ('JPEG', 'PNG', 'png', 'jpeg')):  # a graph decoder, which knows no path
    return first + ' (a file that looked complete failed to decode; --mode=inspect_data names it)'
  return first


def _load(split: Split | tfds_source.RecordSplit, index, data: ml_collections.ConfigDict):
  table = labels.label_table(split.label_map, data.num_classes, data.ignore_label)
  mean, _ = normalization.mean_std(data)
  colors = palette.for_config(data)
  if isinstance(split, tfds_source.RecordSplit):
    image, label, where = _record(split, index)
    return transforms.load_bytes(where, where, image, label, table, data.ignore_label,
                                 data.skip_bad_examples, mean, colors)
  return transforms.load(tf.constant(split.image_paths)[index], tf.constant(split.label_paths)[index],
                         table, data.ignore_label, data.skip_bad_examples, mean, colors)


def _example_name(split: Split | tfds_source.RecordSplit, index):
  """The image path, or 'tfds NAME split S example i', of example index, for messages."""
  if isinstance(split, tfds_source.RecordSplit):
    return tf.strings.join([split.source + ' example ', tf.strings.as_string(index)])
  return tf.constant(split.image_paths)[index]


def _record(split: tfds_source.RecordSplit, index):
  """(image bytes, label bytes, 'tfds NAME split S example i') of record index, parsed in the graph."""
  serialized = tf.numpy_function(lambda i: np.array(split.read(int(i)), object), [index], tf.string,
                                 stateful=False)
  spec = tf.io.FixedLenFeature([], tf.string)
  features = tf.io.parse_single_example(tf.ensure_shape(serialized, []),
                                        {split.image_key: spec, split.label_key: spec})
  return features[split.image_key], features[split.label_key], _example_name(split, index)


def _example(image, label, problem, index, include_index: bool, label_dtype=tf.int32) -> dict:
  """The batch element: image, label, and what the loader found wrong ('' if nothing)."""
  example = {'image': image, 'label': tf.cast(label, label_dtype), 'problem': problem}
  if include_index:
    example['index'] = tf.cast(index, tf.int32)
  return example


_FEISTEL_ROUNDS = 4  # four rounds of a pseudorandom function give a pseudorandom permutation


def permuted_index(i, n: int, key):
  """Element i of a pseudorandom permutation of range(n) drawn from key ([2] int64), in O(1).

  A Feistel network keyed by `key` permutes the 2^(2h) >= n integers of 2h bits; cycle-walking (apply
  it again until the value is below n) restricts that to range(n). Unlike sorting n random numbers
  for every example (3.4 ms at VOC's 10,582), the cost does not grow with the split.
  """
  half = max(1, ((n - 1).bit_length() + 1) // 2)
  mask = (1 << half) - 1

  def feistel(x):
    left, right = tf.bitwise.right_shift(x, half), tf.bitwise.bitwise_and(x, mask)
    for r in range(_FEISTEL_ROUNDS):
      round_key = tf.random.experimental.stateless_fold_in(key, r)
      mix = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(round_key, right),
                                        0, mask + 1, dtype=tf.int64)
      left, right = right, tf.bitwise.bitwise_xor(left, mix)
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(left, half), right)

  first = feistel(tf.cast(i, tf.int64))
  return tf.while_loop(lambda x: x >= n, lambda x: [feistel(x)], [first])[0]


def _train_example(position, split: Split, data: ml_collections.ConfigDict, seed: int,
                   include_index: bool, as_uint8: bool):
  n = len(split)
  index = permuted_index(position % n, n, tf.stack([tf.cast(seed, tf.int64), position // n]))
  image, label, problem = _load(split, index, data)
  seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), position]), 3)
  mean, std = normalization.mean_std(data)
  image, label = transforms.scale_pad_crop(image, label, seeds[:2], data.crop_size,
                                           (data.min_scale, data.max_scale, data.scale_step), mean, std,
                                           data.ignore_label, as_uint8)
  if data.flip:
    image, label = transforms.random_flip(image, label, seeds[2])
  return _example(image, label, problem, index, include_index, tf.uint8 if as_uint8 else tf.int32)


def train_batches(split: Split, data: ml_collections.ConfigDict, seed: int, global_batch: int,
                  start_step: int = 0, shard: Shard = Shard(), include_index: bool = False,
                  as_uint8: bool = False) -> Batches:
  """Endless local batches {'image': [L, H, W, 3] float32, 'label': [L, H, W] int32} from start_step.

  (H, W) is data.crop_size: a side (square) or (height, width).

  include_index adds 'index' [L] int32, each example's position in split. as_uint8 gives uint8 images
  (in [0, 255], not normalised) and uint8 labels, a quarter of the bytes, for a train step that
  normalises on the device (steps.train_step does so for uint8 images).
  """
  dataset = _positions(start_step, None, global_batch, shard)
  dataset = dataset.map(lambda g: _train_example(g, split, data, seed, include_index, as_uint8),
                        num_parallel_calls=data.num_parallel_calls, deterministic=True)
  return Batches(_with_options(dataset, data).batch(shard.local_batch(global_batch), drop_remainder=True))


def _eval_example(position, split: Split, data: ml_collections.ConfigDict, include_index: bool,
                  to_canvas: bool):
  n = len(split)
  index = tf.minimum(position, n - 1)
  image, label, problem = _load(split, index, data)
  height, width = sizes.height_width(data.eval_size, 'data.eval_size')
  tf.debugging.assert_less_equal(tf.shape(label), tf.constant([height, width]), message=tf.strings.join(
      [f'image larger than data.eval_size {height}x{width} (height x width); raise it, or set '
       'data.eval_protocol to resize or slide: ',
       _example_name(split, index)]))
  mean, std = normalization.mean_std(data)
  if to_canvas:
    image, label = transforms.pad_to_size(image, label, height, width, mean, data.ignore_label)
  # Positions past the end fill the last batch; all-ignore labels keep them out of the metrics.
  label = tf.where(position < n, tf.cast(label, tf.int32), data.ignore_label)
  problem = tf.where(position < n, problem, '')  # a repeat of the last example is not counted twice
  index = tf.where(position < n, index, -1)
  return _example(transforms.normalize(image, mean, std), label, problem, index, include_index)


def num_eval_batches(split: Split, global_batch: int) -> int:
  return -(-len(split) // global_batch)


EVAL_PADDINGS = ('canvas', 'batch')


def eval_batches(split: Split, data: ml_collections.ConfigDict, global_batch: int,
                 shard: Shard = Shard(), include_index: bool = False,
                 bucket_sides: tuple[np.ndarray, np.ndarray] | None = None) -> Batches:
  """One pass over split in local batches of whole images padded to eval_size (padding = ignore).

  With data.eval_padding='batch' each batch is padded only to its largest image, and further, in the
  same tf.data graph, to bucket_sides[axis][side] when given (the evaluator's buckets); the normalised
  padding is 0, the mean pixel, as on the canvas.
  include_index adds 'index' [L] int32: each example's position in split, -1 for filler slots.
  """
  if data.eval_padding not in EVAL_PADDINGS:
    raise UserError(f'data.eval_padding is {data.eval_padding!r}; expected one of {EVAL_PADDINGS}.')
  to_canvas = data.eval_padding == 'canvas'
  dataset = _positions(0, num_eval_batches(split, global_batch), global_batch, shard)
  dataset = dataset.map(lambda g: _eval_example(g, split, data, include_index, to_canvas),
                        num_parallel_calls=data.num_parallel_calls, deterministic=True)
  dataset, local = _with_options(dataset, data), shard.local_batch(global_batch)
  if to_canvas:
    return Batches(dataset.batch(local))
  shapes = {'image': [None, None, 3], 'label': [None, None], 'problem': []}
  padding = {'image': 0.0, 'label': data.ignore_label, 'problem': ''}
  if include_index:
    shapes['index'], padding['index'] = [], -1
  dataset = dataset.padded_batch(local, padded_shapes=shapes, padding_values=padding)
  if bucket_sides is not None:
    dataset = dataset.map(functools.partial(_pad_to_sides, tables=tuple(
        tf.constant(np.asarray(t, np.int32)) for t in bucket_sides), ignore_label=data.ignore_label))
  return Batches(dataset)


def _pad_to_sides(batch: dict, tables: tuple[tf.Tensor, tf.Tensor], ignore_label: int) -> dict:
  """A padded batch padded further, bottom/right, to tables[axis][its side] (image 0, label ignore)."""
  sides = tf.shape(batch['label'])[1:3]
  extra = [tables[axis][sides[axis]] - sides[axis] for axis in (0, 1)]
  pads = [[0, 0], [0, extra[0]], [0, extra[1]]]
  return dict(batch, image=tf.pad(batch['image'], pads + [[0, 0]]),
              label=tf.pad(batch['label'], pads, constant_values=ignore_label))


def _with_options(dataset: tf.data.Dataset, data: ml_collections.ConfigDict) -> tf.data.Dataset:
  """data.num_threads > 0 gives the pipeline a private thread pool of that size (0: TF's shared one)."""
  if not data.num_threads:
    return dataset
  options = tf.data.Options()
  options.threading.private_threadpool_size = data.num_threads
  return dataset.with_options(options)


def whole_examples(split: Split | tfds_source.RecordSplit, data: ml_collections.ConfigDict,
                   shard: Shard = Shard()) -> Batches:
  """Every example of this shard's part of split (positions p with p % count == index) as it is stored:
  batches of one {'image': [1, H, W, 3] uint8, 'label': [1, H, W] uint8, 'index': [1] int32}, not
  padded, for evaluation protocols that resize or tile each image (data.eval_protocol).
  """
  dataset = tf.data.Dataset.range(shard.index, len(split), shard.count)
  dataset = dataset.map(lambda i: _example(*_load(split, i, data), i, True, tf.uint8),
                        num_parallel_calls=data.num_parallel_calls, deterministic=True)
  return Batches(_with_options(dataset, data).batch(1))
