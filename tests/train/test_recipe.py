"""The training recipe's parameter groups against the official TF DeepLab and the v1/v2 Caffe prototxts:
which kernels weight decay reaches, the last layers, and the per-parameter learning-rate multipliers."""
import importlib

import jax
import numpy as np
import pytest

from configs import base
from deeplab_jax.errors import UserError
from deeplab_jax.models.deeplab import variable_shapes
from deeplab_jax.train import optimizer


def _config(name):
  config = importlib.import_module(f'configs.{name}').get_config()
  config.model.xception.middle_units = 1  # the same parameter groups, fewer of them
  config.model.resnet.blocks = (1, 1, 1, 3)  # three units for multi-grid
  return config


def _flat(tree):
  return {optimizer._path_name(p): v for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _one_update(train_cfg, params):
  """The first SGD update of params under train_cfg with all gradients 1, as a {name: array} dict."""
  tx = optimizer.create_optimizer(train_cfg)
  grads = jax.tree.map(np.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  return _flat(updates)


def _params(name):
  """The config's parameter tree with every leaf a [1] array of 0.5 (groups go by name, not shape)."""
  shapes = variable_shapes(_config(name))['params']
  return jax.tree.map(lambda s: np.full((1,), 0.5, np.float32), shapes)


@pytest.mark.parametrize('name', ['v3plus_voc', 'v3plus_mobilenetv2_voc'])
def test_no_depthwise_kernel_is_decayed_as_in_the_official_code(name):
  # Official: xception regularize_depthwise=False, mobilenet training_scope and split_separable_conv2d
  # set weights_regularizer=None on every separable/depthwise conv; every other conv kernel is decayed.
  config = _config(name)
  config.train.momentum = 0.0
  config.train.bias_lr_multiplier = config.train.last_layer_lr_multiplier = 1.0
  params = _params(name)
  base_lr, decay = config.train.base_lr, config.train.weight_decay
  updates = _one_update(config.train, params)
  shapes = _flat(variable_shapes(config)['params'])
  depthwise = [n for n, v in shapes.items() if n.endswith('/kernel') and v.shape[2] == 1]
  assert len(depthwise) > 10
  if name == 'v3plus_voc':
    assert any(n.startswith('head/aspp/') for n in depthwise) and any('decoder' in n for n in depthwise)
  for n, u in updates.items():
    decayed = n.endswith('/kernel') and n not in depthwise
    np.testing.assert_allclose(u, -base_lr * (1 + decay * 0.5 * decayed), rtol=1e-6, err_msg=n)


def test_decay_depthwise_restores_decay_on_every_kernel():
  params = {'unit': {'depthwise': {'kernel': np.ones((3, 3, 1, 4), np.float32)},
                     'pointwise': {'kernel': np.ones((1, 1, 4, 8), np.float32)}}}
  assert not base.get_config().train.decay_depthwise
  assert not optimizer.kernel_mask(params, False)['unit']['depthwise']['kernel']
  assert optimizer.kernel_mask(params, True)['unit']['depthwise']['kernel']
  assert optimizer.kernel_mask(params, False)['unit']['pointwise']['kernel']


@pytest.mark.parametrize('name, classifier', [
    ('v1_voc', ['head/branch0/fc8']),
    ('v2_voc', [f'head/branch{i}/fc6' for i in range(4)]),
    ('v3_voc', ['head/logits']),
    ('v3plus_voc', ['head/logits'])])
def test_classifier_is_the_layers_that_output_the_classes(name, classifier):
  # 'head/logits' (the old default) names no parameter of the LargeFOV or ASPP-L heads.
  config = _config(name)
  params = variable_shapes(config)['params']
  assert config.train.last_layers == ('classifier',)
  assert list(optimizer.last_layer_prefixes(params, config.train.last_layers)) == classifier
  for prefix in classifier:
    assert _flat(params)[prefix + '/kernel'].shape[-1] == config.data.num_classes
  if name in ('v1_voc', 'v2_voc'):
    with pytest.raises(UserError, match="'head/logits' matches no parameter"):
      optimizer.last_layer_prefixes(params, ('head/logits',))


def test_classifier_of_the_vgg_aspp_l_variant_is_each_branch_fc8():
  config = _config('v2_voc')
  config.model.backbone, config.model.fc_features, config.model.msc_scales = 'vgg16', 1024, ()
  params = variable_shapes(config)['params']
  assert optimizer.last_layer_prefixes(params, ('classifier',)) == tuple(
      f'head/branch{i}/fc8' for i in range(4))


@pytest.mark.parametrize('name', ['v1_voc', 'v2_voc'])
def test_v1_v2_learning_rates_are_the_released_prototxts(name):
  # Caffe lr_mult: weights 1, biases 2 (decay_mult 0); fc8 / fc1_voc12_c* 10 and 20; v2's frozen
  # BatchNorm and Scale layers 0. SGD's first step with unit gradients: -lr * lr_mult * (1 + decay * w).
  config = _config(name)
  config.train.momentum = 0.0
  params = _params(name)
  base_lr, decay = config.train.base_lr, config.train.weight_decay
  classifier = ('head/branch0/fc8',) if name == 'v1_voc' else tuple(f'head/branch{i}/fc6' for i in range(4))
  names = _flat(params)
  norm_modules = {n.rpartition('/')[0] for n in names if n.endswith('/scale')}
  seen = set()
  for n, u in _one_update(config.train, params).items():
    module, _, leaf = n.rpartition('/')
    in_classifier = module in classifier
    if module in norm_modules:
      mult, decayed = 0.0, False
      seen.add('norm')
    elif leaf == 'bias':
      mult, decayed = (20.0 if in_classifier else 2.0), False
      seen.add('classifier bias' if in_classifier else 'bias')
    else:
      mult, decayed = (10.0 if in_classifier else 1.0), True
      seen.add('classifier weight' if in_classifier else 'weight')
    np.testing.assert_allclose(u, -base_lr * mult * (1 + decay * 0.5 * decayed), rtol=1e-6, err_msg=n)
  assert seen >= {'classifier bias', 'classifier weight', 'weight'}
  assert ('norm' in seen) == (name == 'v2_voc') and ('bias' in seen) == (name == 'v1_voc')


def test_official_multipliers_biases_two_and_last_layers_whole_head():
  # get_model_gradient_multipliers: biases 2; under last_layers m, biases 2m, other variables m.
  # last_layers_contain_logits_only=False makes every layer outside the feature extractor a last layer.
  config = _config('v3plus_voc')
  config.train.momentum, config.train.weight_decay = 0.0, 0.0
  config.train.last_layers, config.train.last_layer_lr_multiplier = ('head',), 3.0
  assert config.train.bias_lr_multiplier == 2.0  # the official code's, for configs that follow it
  params = _params('v3plus_voc')
  for n, u in _one_update(config.train, params).items():
    want = (3.0 if n.startswith('head/') else 1.0) * (2.0 if n == 'head/logits/bias' else 1.0)
    np.testing.assert_allclose(u, -config.train.base_lr * want, rtol=1e-6, err_msg=n)


def test_last_layer_prefixes_match_whole_module_names_only():
  params = {'head': {'logits': {'kernel': np.ones(2)}, 'logits2': {'kernel': np.ones(2)}}}
  assert optimizer.prefix_mask(params, ('head/logits',)) == {
      'head': {'logits': {'kernel': True}, 'logits2': {'kernel': False}}}
  with pytest.raises(UserError, match='matches no parameter'):
    optimizer.last_layer_prefixes(params, ('head/logit',))
