"""Precise BatchNorm statistics: the moving averages replaced by the mean of each BatchNorm's statistics
over N training batches, computed with the final weights (Wu & Johnson, "Rethinking 'Batch' in
BatchNorm", 2021, section 3; detectron2's PreciseBN hook).

A moving average with decay d follows the weights with a lag of about 1 / (1 - d) steps: 100 at 0.99,
3,300 at the official 0.9997. Over a short run from scratch the weights move faster than that, and the
eval-mode network (moving statistics) is not the one that was trained (batch statistics): torchvision's
DeepLabV3-MobileNetV3 after 500 CamVid steps scores 12.65 val mIoU with its moving statistics and 38.67
with precise ones (BENCHMARKS.md). The official recipes (30k+ steps, fine-tuning from ImageNet) do not
need it, so it is off by default: train.precise_bn_batches = N applies it at the end of training (the
last checkpoint holds the precise statistics), and benchmarks.peer_train to both of its sides alike.

Each batch runs the training model (batch statistics, dropout) with every BatchNorm's momentum at 0, so
the layer's new moving statistics are that batch's mean and (biased) variance; they are averaged over
the batches. A layer's input depends on the batch statistics of the layers before it only, never on
moving ones, so one pass per batch suffices.
"""
from collections.abc import Callable, Iterable
import itertools

import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax import sharding
from deeplab_jax.data import normalization
from deeplab_jax.errors import UserError
from deeplab_jax.models import deeplab
from deeplab_jax.train import steps


def batch_statistics_fn(config: ml_collections.ConfigDict) -> Callable:
  """A jitted f(variables, batch, rng) -> batch_stats of the batch: each BatchNorm's mean and variance
  over it, in the training model (batch as pipeline.train_batches sends it, uint8 or normalised)."""
  model = deeplab.build_model(config, train=True, bn_momentum=0.0)
  mean, std = normalization.mean_std(config.data)
  options = steps.StepOptions(image_mean=mean, image_std=std)

  @jax.jit
  def statistics(variables, batch, rng):
    image = steps.device_batch(batch, options)['image']
    _, updates = model.apply(variables, image, mutable=['batch_stats'], rngs={'dropout': rng})
    return updates['batch_stats']

  return statistics


def recalibrate(config: ml_collections.ConfigDict, variables: dict, batches: Iterable[dict],
                num_batches: int, mesh: jax.sharding.Mesh, seed: int = 0,
                log: Callable[[str], None] = print) -> dict:
  """variables with batch_stats replaced by their mean over the next num_batches of batches.

  Unchanged (with a log line) for a model without BatchNorm or with model.fine_tune_batch_norm=False
  (frozen statistics: the imported ones are the ones trained with). UserError when batches run out or
  num_batches < 1.
  """
  if num_batches < 1:
    raise UserError(f'Precise BatchNorm needs at least one batch, got {num_batches}.')
  if not variables.get('batch_stats'):
    log('precise BN: the model has no BatchNorm; statistics unchanged')
    return variables
  if not config.model.fine_tune_batch_norm:
    log('precise BN: model.fine_tune_batch_norm=False keeps the BatchNorm statistics frozen; unchanged')
    return variables
  statistics = batch_statistics_fn(config)
  variables = jax.device_put(variables, sharding.replicated(mesh))
  rng = jax.random.key(seed)
  total, count = None, 0
  for batch in itertools.islice(batches, num_batches):
    stats = statistics(variables, sharding.global_batch(batch, mesh), jax.random.fold_in(rng, count))
    total = stats if total is None else jax.tree.map(jnp.add, total, stats)
    count += 1
  if count < num_batches:
    raise UserError(f'Precise BatchNorm asked for {num_batches} batches; the stream gave {count}.')
  log(f'precise BN: BatchNorm statistics averaged over {count} training batches')
  return dict(variables, batch_stats=jax.tree.map(lambda x: x / count, total))
