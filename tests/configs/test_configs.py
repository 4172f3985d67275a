"""Every config file loads, builds, trains one step on 2 devices and evaluates at another output stride.

Widths and depths are shrunk through the configs' own fields (ResNet units and width, Xception middle
units, MobileNet width, fc and ASPP channels) and the crop is 33 px, so each takes seconds; what each
config chooses (backbone, head, decoder, separable convs, MSC, output strides) is kept.
"""
import glob
import importlib
import os

import jax
import numpy as np
import pytest

from deeplab_jax import sharding
from deeplab_jax.evaluate import evaluator, inference
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.train import loop, optimizer, steps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, 'configs', '*.py'))
                 if os.path.basename(p) not in ('__init__.py', 'cityscapes.py', 'base.py'))
CROP = 33
# base.py is the v3_voc recipe without its eval stride; quickstart trains end to end in tests/test_main.py.
SKIP = ('quickstart',)


def shrink(config):
  model = config.model
  model.resnet.blocks = (1, 1, 1, len(model.multi_grid) or 1)
  model.resnet.width = 8
  model.xception.middle_units = 1
  model.mobilenet.width_multiplier = 0.35
  model.aspp_features = 16
  model.decoder_low_level_features = 8
  model.fc_features = min(model.fc_features, 16)
  config.data.crop_size = CROP
  config.train.batch_size = 8
  # The library convs: the per-platform lowerings (ops/conv.py) compile slower on CPU and are checked
  # against these in tests/models/test_atrous_impl_and_remat.py; here each config's choices are tested.
  model.atrous_impl, model.depthwise_impl, model.pointwise_impl = 'dilation', 'grouped', 'conv'
  return config


def test_every_experiment_config_is_tested():
  assert {'v1_voc', 'v2_voc', 'v3_voc', 'v3plus_voc', 'v3plus_resnet101_voc', 'v3plus_mobilenetv2_voc',
          'v3_cityscapes', 'v3plus_cityscapes', 'quickstart'} <= set(CONFIGS)


@pytest.mark.parametrize('name', [c for c in CONFIGS if c not in SKIP])
def test_config_trains_one_step_and_evaluates_at_another_stride(name):
  config = shrink(importlib.import_module(f'configs.{name}').get_config())
  num_classes = config.data.num_classes
  # Two devices: the batch split over the mesh as in training (8-device equality with one device is
  # tests/train/test_steps.py's); 8 host devices on 2 cores would cost each config a third more.
  mesh = sharding.make_mesh(jax.devices()[:2])
  state = loop.init_state(config, mesh, jax.random.key(0))
  rng = np.random.default_rng(0)
  labels = rng.integers(0, num_classes, size=(8, CROP, CROP)).astype(np.int32)
  labels[:, :3] = config.data.ignore_label
  batch = sharding.global_batch({'image': rng.normal(size=(8, CROP, CROP, 3)).astype(np.float32),
                              'label': labels}, mesh)
  step = steps.jit_train_step(mesh, steps.step_options(config, optimizer.poly_schedule(config.train)))
  new_state, metrics = step(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics['loss'])) and float(metrics['grad_norm']) > 0

  train_stride = config.model.output_stride
  eval_stride = config.model.eval_output_stride
  eval_stride = eval_stride if eval_stride and eval_stride != train_stride else (16 if train_stride == 8
                                                                                 else 8)
  model = build_model(config, train=False, output_stride=eval_stride)
  confusion, _ = evaluator.jit_eval_step(mesh, model, inference.Setting((1.0,), False), num_classes,
                                         config.data.ignore_label)(new_state.variables(), batch)
  assert int(np.asarray(confusion).sum()) == int((labels != config.data.ignore_label).sum())
