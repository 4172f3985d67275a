"""Analytic multiply-adds: a hand-computed conv, rate independence, and the DeepLabv3+ paper's table."""
import jax
import jax.numpy as jnp
import pytest

from configs import base
from deeplab_jax.models import summary
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.ops.atrous import AtrousConv, AtrousDepthwiseConv


def macs_of(module, shape):
  images = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(module.init, jax.random.key(0), images)
  return sum(m for _, m in summary.count_macs(module, variables, images))


def test_conv_macs_by_hand():
  # 3x3, 5 -> 7 channels, stride 2 on 2 x 9 x 11: output 5 x 6 pixels per image.
  assert macs_of(AtrousConv(7, 3, stride=2), (2, 9, 11, 5)) == 9 * 5 * 7 * 2 * 5 * 6
  assert macs_of(AtrousDepthwiseConv(3), (1, 8, 8, 6)) == 9 * 6 * 64


def test_atrous_rate_does_not_change_the_count():
  # Kernel taps, not the zero-padded (2r + 1)^2 kernel an XLA lowering may use.
  assert macs_of(AtrousConv(4, 3, rate=6), (1, 20, 20, 3)) == macs_of(AtrousConv(4, 3), (1, 20, 20, 3))


def paper_model(**overrides):
  config = base.get_config()
  config.model.resnet.stem = 'beta'  # DeepLab's resnet_v1_101_beta, the ResNet-101 of its v3+ models
  for key, value in overrides.items():
    config.model[key] = value
  return build_model(config, train=False)


XCEPTION = dict(backbone='xception65', multi_grid=(), decoder=True, aspp_separable=True,
                decoder_separable=True)


@pytest.mark.parametrize('overrides, paper_gmacs', [
    (dict(output_stride=16), 81.02),
    (dict(output_stride=16, decoder=True), 101.28),
    (XCEPTION, 54.17),
])
def test_macs_at_513_within_5_percent_of_the_paper(overrides, paper_gmacs):
  gmacs = summary.summarize(paper_model(**overrides), 513)['macs'] / 1e9
  assert abs(gmacs - paper_gmacs) <= 0.05 * paper_gmacs, gmacs


def test_resnet101_os8_macs():
  # Measured 253.3B against the paper's 276.18B (-8.3%): the paper's OS 8 count grows more than the
  # analytic one (see the module docstring of deeplab_jax/models/summary.py); held to 10% here.
  gmacs = summary.summarize(paper_model(output_stride=8), 513)['macs'] / 1e9
  assert abs(gmacs - 276.18) <= 0.10 * 276.18, gmacs
  if abs(gmacs - 276.18) > 0.05 * 276.18:
    pytest.xfail(f'{gmacs:.2f}B is {100 * (gmacs / 276.18 - 1):+.1f}% off the paper (5% wanted)')


def test_summary_rows_add_up_to_totals():
  result = summary.summarize(paper_model(), 129)
  assert sum(p for _, p, _ in result['rows']) == result['params']
  assert sum(m for _, _, m in result['rows']) == result['macs']
  assert 'head/aspp' in [name for name, _, _ in result['rows']]


def test_config_summary_table():
  from tests.conftest import tiny_config
  text = summary.config_summary(tiny_config())
  assert 'head/aspp' in text and 'backbone/stage4_unit3' in text
  total = [line for line in text.splitlines() if line.startswith('total')][0].split()
  assert int(total[1].replace(',', '')) > 0 and float(total[2]) > 0


@pytest.mark.parametrize('arg, torchvision_ops, torchvision_params', [
    ('mobilenet_v3_large', 10.452, 11_029_328),
    ('resnet50', 178.722, 42_004_074),
])
def test_torchvision_deeplabv3_counts_equal_torchvisions_published_ones(arg, torchvision_ops,
                                                                        torchvision_params):
  # torchvision's weights metadata ('_ops' in GFLOPS, counted as multiply-adds; 'num_params') at its
  # 520x520 evaluation size, aux head included.
  from configs.pretrained import torchvision_deeplabv3
  config = torchvision_deeplabv3.get_config(arg)
  result = summary.summarize(build_model(config, train=False), 520)
  assert result['params'] == torchvision_params
  assert round(result['macs'] / 1e9, 3) == torchvision_ops
