"""Precise BatchNorm: the statistics become the mean of each layer's per-batch statistics."""
import jax
import numpy as np
import pytest

from deeplab_jax import sharding
from deeplab_jax.data import datasets, pipeline
from deeplab_jax.errors import UserError
from deeplab_jax.models import deeplab
from deeplab_jax.train import loop, precise_bn
from tests.train.fault_helpers import final_params, loop_config
from tests.train.helpers import assert_trees_close, fixed_config


def uint8_batches(n, size=32, seed=0):
  rng = np.random.default_rng(seed)
  return [{'image': rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8),
           'label': np.zeros((8, size, size), np.uint8)} for _ in range(n)]


@pytest.fixture(scope='module')
def setup():
  config = fixed_config()
  mesh = sharding.make_mesh()
  variables = jax.device_get(loop.init_state(config, mesh, jax.random.key(0)).variables())
  return config, mesh, variables


def test_statistics_are_the_mean_of_each_batchs_as_flax_updates_them(setup):
  """Reference: the training model at the config's own momentum m = 0.5 (heads and backbone), started
  from zero statistics, writes (1 - m) * the batch's mean and variance; twice that, averaged."""
  config, mesh, variables = setup
  batches = uint8_batches(3)
  result = precise_bn.recalibrate(config, variables, iter(batches), 3, mesh, log=lambda _: None)

  half = config.copy_and_resolve_references()
  half.model.bn_momentum = half.model.backbone_bn_momentum = 0.5
  model = deeplab.build_model(half, train=True)
  zeros = jax.tree.map(np.zeros_like, variables['batch_stats'])
  mean, std = np.float32(config.data.mean), np.float32(config.data.std)
  per_batch = []
  for batch in batches:
    image = (batch['image'].astype(np.float32) - mean) / std
    _, updates = model.apply({'params': variables['params'], 'batch_stats': zeros}, image,
                             mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
    per_batch.append(jax.tree.map(lambda x: 2 * np.asarray(x), updates['batch_stats']))
  expected = jax.tree.map(lambda *xs: np.mean(xs, axis=0), *per_batch)
  assert_trees_close(result['batch_stats'], expected, rtol=2e-4, atol=1e-5)
  # The statistics really changed: the init's are zeros and ones.
  first, init = jax.tree.leaves(result['batch_stats'])[0], jax.tree.leaves(variables['batch_stats'])[0]
  assert not np.allclose(first, init)


def test_one_batch_makes_the_eval_model_equal_the_training_model_on_it(setup):
  """Every BatchNorm (heads, and the backbone whose factory sets its own momentum) takes the batch's
  statistics, so the inference network reproduces the training network's logits on that batch."""
  config, mesh, variables = setup
  batch = uint8_batches(1, seed=1)[0]
  result = precise_bn.recalibrate(config, variables, iter([batch]), 1, mesh, log=lambda _: None)
  image = (batch['image'].astype(np.float32) - np.float32(config.data.mean)) / np.float32(config.data.std)
  train_logits, _ = deeplab.build_model(config, train=True).apply(
      variables, image, mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
  eval_logits = deeplab.build_model(config, train=False).apply(jax.device_get(result), image)
  before = deeplab.build_model(config, train=False).apply(variables, image)
  scale = np.abs(train_logits['logits']).max()
  np.testing.assert_allclose(eval_logits['logits'], train_logits['logits'], atol=1e-3 * scale)
  assert np.abs(before['logits'] - train_logits['logits']).max() > 1e-2 * scale


def test_frozen_statistics_stay_and_a_short_stream_is_an_error(setup):
  config, mesh, variables = setup
  frozen = config.copy_and_resolve_references()
  frozen.model.fine_tune_batch_norm = False
  lines = []
  same = precise_bn.recalibrate(frozen, variables, iter(uint8_batches(1)), 1, mesh, log=lines.append)
  assert same is variables and 'frozen' in lines[0]
  with pytest.raises(UserError, match='asked for 3 batches; the stream gave 2'):
    precise_bn.recalibrate(config, variables, iter(uint8_batches(2)), 3, mesh, log=lambda _: None)


def test_the_last_checkpoint_holds_statistics_of_the_batches_after_the_last_step(tmp_path):
  """train.precise_bn_batches: the run's weights are unchanged, its final batch_stats are precise_bn's
  over the stream's next batches (the stream is a function of (seed, step), so they can be remade)."""
  root = str(tmp_path / 'data')
  config = loop_config(root, num_steps=3)
  loop.train_and_evaluate(config, str(tmp_path / 'moving'), log=lambda _: None)
  config.train.precise_bn_batches = 2
  lines = []
  loop.train_and_evaluate(config, str(tmp_path / 'precise'), log=lines.append)
  assert any('averaged over 2 training batches' in line for line in lines)
  moving, precise = final_params(str(tmp_path / 'moving')), final_params(str(tmp_path / 'precise'))
  jax.tree.map(np.testing.assert_array_equal, moving['params'], precise['params'])
  train_split, _ = datasets.load_splits(config.data, log=lambda *_: None)
  following = pipeline.train_batches(train_split, config.data, config.seed, config.train.batch_size, 3,
                                     as_uint8=True)
  expected = precise_bn.recalibrate(config, moving, following, 2, sharding.make_mesh(), seed=config.seed,
                                    log=lambda _: None)
  following.close()
  assert_trees_close(precise['batch_stats'], expected['batch_stats'], rtol=1e-5, atol=1e-6)
  first = [jax.tree.leaves(run['batch_stats'])[0] for run in (precise, moving)]
  assert not np.allclose(*first)
