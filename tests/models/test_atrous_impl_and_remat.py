"""model.atrous_impl reaches every atrous conv and keeps the logits; model.remat keeps loss and grads."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deeplab_jax.errors import UserError
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.ops import atrous
from deeplab_jax.train import losses
from tests.conftest import tiny_config


def tiny_model_config(backbone='resnet101', impl='dilation', remat='none', depthwise='grouped',
                      pointwise='conv'):
  """A tiny OS 8 model of 5 classes, so the backbone and head have rates > 1 (ResNet stages 3 and 4:
  2 and 4)."""
  config = tiny_config()
  config.data.num_classes = 5
  model = config.model
  model.backbone, model.output_stride, model.atrous_impl, model.remat = backbone, 8, impl, remat
  model.depthwise_impl, model.pointwise_impl = depthwise, pointwise
  model.resnet.blocks, model.multi_grid = (1, 1, 1, 1), ()
  model.aspp_features = 16
  model.xception.middle_units = 1
  model.mobilenet.width_multiplier = 0.25
  if backbone == 'vgg16':
    model.head, model.multi_grid, model.fc_features = 'largefov', (), 16
  elif backbone == 'xception65':
    model.multi_grid, model.aspp_separable = (1, 2, 4), True
  return config


def dilated_conv_rates(config, size=33):
  """rhs_dilation rates > 1 in the jaxpr of the inference model's forward pass (nothing is computed)."""
  model = build_model(config, train=False)
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  text = str(jax.make_jaxpr(model.apply)(variables, images))
  rates = re.findall(r'rhs_dilation=\((\d+), (\d+)\)', text)
  return [r for r in rates if r != ('1', '1')]


@pytest.mark.parametrize('backbone', ['resnet101', 'xception65', 'mobilenetv2', 'mobilenetv3_large',
                                      'vgg16'])
def test_space_to_batch_reaches_every_atrous_conv(backbone):
  assert dilated_conv_rates(tiny_model_config(backbone, 'dilation'))  # the model has atrous convs
  assert not dilated_conv_rates(tiny_model_config(backbone, 'space_to_batch'))


def test_space_to_batch_model_gives_the_same_logits():
  images = jax.random.normal(jax.random.key(1), (2, 48, 48, 3))
  dilation = build_model(tiny_model_config(impl='dilation'), train=False)
  s2b = build_model(tiny_model_config(impl='space_to_batch'), train=False)
  variables = jax.jit(dilation.init)(jax.random.key(0), images)
  expected = jax.jit(dilation.apply)(variables, images)['logits']
  got = jax.jit(s2b.apply)(variables, images)['logits']  # the impls share parameters
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_auto_resolves_to_the_platform_default():
  # 'auto' builds the graph of the impl ops/atrous_defaults.json names for this backend; only
  # 'dilation' keeps rhs_dilation convs (space_to_batch and taps compute rate 1 convs or matmuls).
  measured = atrous.default_impl(jax.default_backend(), depthwise=False)
  explicit = dilated_conv_rates(tiny_model_config(impl=measured))
  assert dilated_conv_rates(tiny_model_config(impl='auto')) == explicit
  assert bool(explicit) == (measured == 'dilation')


def loss_and_grads(remat, images, labels, params, batch_stats):
  model = build_model(tiny_model_config(remat=remat), train=True)

  def loss_fn(p):
    outputs, _ = model.apply({'params': p, 'batch_stats': batch_stats}, images,
                             mutable=['batch_stats'], rngs={'dropout': jax.random.key(2)})
    return losses.deeplab_loss(outputs, labels, 255, 0.0)[0]

  return jax.jit(jax.value_and_grad(loss_fn))(params)


def test_remat_gives_the_same_loss_and_grads():
  images = jax.random.normal(jax.random.key(1), (2, 48, 48, 3))
  labels = jax.random.randint(jax.random.key(3), (2, 48, 48), 0, 5)
  plain = build_model(tiny_model_config(remat='none'), train=True)
  variables = jax.jit(plain.init)(jax.random.key(0), images)
  remat_variables = jax.eval_shape(
      build_model(tiny_model_config(remat='backbone'), train=True).init, jax.random.key(0), images)
  assert jax.tree.structure(remat_variables) == jax.tree.structure(variables)  # same names
  loss, grads = loss_and_grads('none', images, labels, variables['params'], variables['batch_stats'])
  remat_loss, remat_grads = loss_and_grads('backbone', images, labels, variables['params'],
                                           variables['batch_stats'])
  np.testing.assert_allclose(remat_loss, loss, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), remat_grads, grads)


def test_remat_is_in_the_graph():
  model = build_model(tiny_model_config(remat='backbone'), train=True)
  images = jax.ShapeDtypeStruct((1, 33, 33, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  apply = lambda v, x: model.apply(v, x, mutable=['batch_stats'], rngs={'dropout': jax.random.key(0)})
  assert 'remat' in str(jax.make_jaxpr(apply)(variables, images))  # jax.checkpoint's primitive


@pytest.mark.parametrize('field,value', [('atrous_impl', 'zero_padded'), ('remat', 'everything'),
                                         ('depthwise_impl', 'winograd'), ('pointwise_impl', 'fft')])
def test_bad_values_are_user_errors(field, value):
  config = tiny_model_config()
  config.model[field] = value
  with pytest.raises(UserError, match=field):
    build_model(config, train=False)


def test_remat_on_vgg_is_a_user_error():
  with pytest.raises(UserError, match='vgg16'):
    build_model(tiny_model_config('vgg16', remat='backbone'), train=False)


def conv_groups(config, size=33):
  """feature_group_count and kernel side of every conv in the inference model's forward jaxpr."""
  model = build_model(config, train=False)
  images = jax.ShapeDtypeStruct((1, size, size, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  jaxpr = jax.make_jaxpr(model.apply)(variables, images)
  convs = [e for e in jaxpr.eqns if e.primitive.name == 'conv_general_dilated']
  return [(e.params['feature_group_count'], e.invars[1].aval.shape[0]) for e in convs]


@pytest.mark.parametrize('backbone', ['mobilenetv3_large', 'xception65'])
def test_taps_and_dot_lowerings_replace_the_library_convs(backbone):
  library = conv_groups(tiny_model_config(backbone, depthwise='grouped', pointwise='conv'))
  assert any(groups > 1 for groups, _ in library) and any(k == 1 for _, k in library)
  fast = conv_groups(tiny_model_config(backbone, depthwise='taps', pointwise='dot'))
  assert all(groups == 1 and k > 1 for groups, k in fast)  # only the dense k x k convs remain


@pytest.mark.parametrize('backbone', ['mobilenetv3_large', 'xception65', 'resnet101'])
def test_taps_and_dot_lowerings_give_the_same_loss_and_gradients(backbone):
  images = jax.random.normal(jax.random.key(1), (2, 40, 40, 3))
  labels = jax.random.randint(jax.random.key(3), (2, 40, 40), 0, 5)
  results = []
  for depthwise, pointwise in (('grouped', 'conv'), ('taps', 'dot')):
    model = build_model(tiny_model_config(backbone, depthwise=depthwise, pointwise=pointwise), train=True)
    variables = jax.jit(model.init)(jax.random.key(0), images)  # same names and values for both

    def loss_fn(params, model=model, variables=variables):
      outputs, _ = model.apply({'params': params, 'batch_stats': variables['batch_stats']}, images,
                               mutable=['batch_stats'], rngs={'dropout': jax.random.key(2)})
      return losses.deeplab_loss(outputs, labels, 255, 0.0)[0]

    results.append(jax.jit(jax.value_and_grad(loss_fn))(variables['params']))
  (loss, grads), (fast_loss, fast_grads) = results
  np.testing.assert_allclose(fast_loss, loss, rtol=1e-5)
  # Float32 rounding of the two lowerings grows through the deep nets' train-mode BatchNorm (batch of
  # 2 at 40 px: few values per statistic): Xception-65's first conv gradients differ by up to 2.4e-5
  # where they are ~1e-3 (1.3e-3 of the largest gradient), so the absolute tolerance is 5e-3 of the
  # largest gradient. A wrong tap or stride moves gradients by their own size.
  atol = max(1e-5, 5e-3 * max(float(np.abs(g).max()) for g in jax.tree.leaves(grads)))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=atol), fast_grads, grads)
