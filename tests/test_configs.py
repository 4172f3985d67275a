"""Every config file loads and builds its model."""
import glob
import importlib.util
import os

import jax
import jax.numpy as jnp
import pytest

from deeplab_jax.models.deeplab import build_model
from tests.conftest import ROOT

CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if not p.endswith('__init__.py'))


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_loads_and_builds(path):
  config = load(path)
  model = build_model(config.model, config.data.num_classes, train=True)
  size = min(config.data.crop_size, 65)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3)))
  out = jax.eval_shape(lambda v: model.apply(v, jnp.zeros((2, size, size, 3)), mutable=['batch_stats'],
                                             rngs={'dropout': jax.random.key(1)})[0], variables)
  assert out['logits'].shape == (2, size, size, config.data.num_classes)
  assert len(config.data.class_names) == config.data.num_classes
