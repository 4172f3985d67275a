"""tf.data pipelines: an endless, deterministic training stream and a finite, padded eval pass.

Positions: training example number g (counted over the whole run and all hosts) belongs to step
g // global_batch; host p of P reads positions [step * G + p * L, step * G + (p + 1) * L) with
L = G / P. Example g is element (g mod N) of the permutation of epoch g // N, drawn from (seed, epoch),
and is augmented with randomness drawn from (seed, g). The stream is thus a pure function of
(seed, step): resuming at step k starts at position k * G at no cost.
"""
import dataclasses
from typing import Iterator

import ml_collections
import numpy as np
import tensorflow as tf

from deeplab_jax.data import transforms
from deeplab_jax.data.voc import Split
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


def _numpy_batches(dataset: tf.data.Dataset) -> Iterator[dict[str, np.ndarray]]:
  """dataset as numpy batches; a bad file surfaces as a UserError naming it, not a TF traceback."""
  iterator = dataset.prefetch(2).as_numpy_iterator()
  while True:
    try:
      yield next(iterator)
    except StopIteration:
      return
    except tf.errors.OpError as e:
      raise UserError(f'Bad input data: {e.message.splitlines()[0]}') from None


def _train_example(position, split: Split, data: ml_collections.ConfigDict, seed: int):
  n = len(split)
  epoch, within = position // n, position % n
  order = tf.argsort(tf.random.stateless_uniform([n], tf.stack([tf.cast(seed, tf.int64), epoch])))
  index = order[within]
  image, label = transforms.load(tf.constant(split.image_paths)[index],
                                 tf.constant(split.label_paths)[index])
  seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(seed, tf.int64), position]), 3)
  image, label = transforms.random_scale(image, label, seeds[0], data.min_scale, data.max_scale,
                                         data.scale_step)
  image, label = transforms.pad_to_size(image, label, data.crop_size, data.crop_size, data.mean,
                                        data.ignore_label)
  image, label = transforms.random_crop(image, label, data.crop_size, seeds[1])
  if data.flip:
    image, label = transforms.random_flip(image, label, seeds[2])
  return {'image': transforms.normalize(image, data.mean, data.std), 'label': tf.cast(label, tf.int32)}


def train_batches(split: Split, data: ml_collections.ConfigDict, seed: int, global_batch: int,
                  start_step: int = 0, shard: Shard = Shard()) -> Iterator[dict[str, np.ndarray]]:
  """Endless local batches {'image': [L, S, S, 3] float32, 'label': [L, S, S] int32} from start_step."""
  dataset = _positions(start_step, None, global_batch, shard)
  dataset = dataset.map(lambda g: _train_example(g, split, data, seed),
                        num_parallel_calls=data.num_parallel_calls, deterministic=True)
  return _numpy_batches(dataset.batch(shard.local_batch(global_batch), drop_remainder=True))


def _eval_example(position, split: Split, data: ml_collections.ConfigDict):
  n = len(split)
  index = tf.minimum(position, n - 1)
  image_path = tf.constant(split.image_paths)[index]
  image, label = transforms.load(image_path, tf.constant(split.label_paths)[index])
  tf.debugging.assert_less_equal(tf.reduce_max(tf.shape(label)), data.eval_size, message=tf.strings.join(
      ['image larger than data.eval_size; raise it: ', image_path]))
  image, label = transforms.pad_to_size(image, label, data.eval_size, data.eval_size, data.mean,
                                        data.ignore_label)
  # Positions past the end fill the last batch; all-ignore labels keep them out of the metrics.
  label = tf.where(position < n, tf.cast(label, tf.int32), data.ignore_label)
  return {'image': transforms.normalize(image, data.mean, data.std), 'label': label}


def num_eval_batches(split: Split, global_batch: int) -> int:
  return -(-len(split) // global_batch)


def eval_batches(split: Split, data: ml_collections.ConfigDict, global_batch: int,
                 shard: Shard = Shard()) -> Iterator[dict[str, np.ndarray]]:
  """One pass over split in local batches of whole images padded to eval_size (padding = ignore)."""
  dataset = _positions(0, num_eval_batches(split, global_batch), global_batch, shard)
  dataset = dataset.map(lambda g: _eval_example(g, split, data),
                        num_parallel_calls=data.num_parallel_calls, deterministic=True)
  return _numpy_batches(dataset.batch(shard.local_batch(global_batch)))
