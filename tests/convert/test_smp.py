"""Converted smp DeepLabV3Plus weights compute smp's function (skips without torch / smp).

The peer is randomly initialised, BatchNorm running statistics included, and run in eval mode; the
deeplab_jax model on the converted variables must give the same logits within 1e-4 of their largest
magnitude, in float32.
"""
import pytest

from configs.pretrained import smp_deeplabv3plus
from tests.convert.helpers import TOLERANCE, logits_errors, randomise


def test_smp_deeplabv3plus_logits_match():
  smp = pytest.importorskip('segmentation_models_pytorch')
  peer = randomise(smp.DeepLabV3Plus(encoder_name='resnet101', encoder_weights=None, classes=21), 7)
  config = smp_deeplabv3plus.get_config('resnet101')
  # smp refuses sides that are not multiples of 16, so the non-square size is even.
  for size in [(64, 64), (96, 160)]:
    errors = logits_errors(peer, config, 'smp_deeplabv3plus', size)
    assert errors['logits'] <= TOLERANCE, (size, errors)
