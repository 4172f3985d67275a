"""Architecture notes: config fields that change the function but no shape, against the peer's config
in configs/pretrained/ (needs no torch)."""
import pytest

from configs import v3_voc
from configs.pretrained import smp_deeplabv3plus, torchvision_deeplabv3
from deeplab_jax.convert.architecture import architecture_notes


@pytest.mark.parametrize('kind,config', [
    ('torchvision_deeplabv3', torchvision_deeplabv3.get_config('resnet50')),
    ('torchvision_deeplabv3', torchvision_deeplabv3.get_config('resnet101')),
    ('torchvision_deeplabv3', torchvision_deeplabv3.get_config('mobilenet_v3_large')),
    ('smp_deeplabv3plus', smp_deeplabv3plus.get_config('resnet101')),
    ('torchvision_resnet', v3_voc.get_config()),  # an ImageNet backbone fixes only the stem
])
def test_the_peers_own_config_has_no_notes(kind, config):
  assert architecture_notes(config.model, kind) == []


def test_notes_name_each_field_the_peer_config_sets_otherwise():
  model = torchvision_deeplabv3.get_config('resnet50').model
  model.output_stride, model.upsample_align_corners = 16, True
  assert architecture_notes(model, 'torchvision_deeplabv3') == [
      'model.output_stride is 16; the torchvision_deeplabv3 peer computes with 8',
      'model.upsample_align_corners is True; the torchvision_deeplabv3 peer computes with False']
  model = smp_deeplabv3plus.get_config('resnet50').model
  model.resnet.stem = 'beta'
  assert architecture_notes(model, 'smp_deeplabv3plus') == [
      "model.resnet.stem is 'beta'; the smp_deeplabv3plus peer computes with 'torchvision'"]
  assert architecture_notes(model, 'torchvision_resnet') == [
      "model.resnet.stem is 'beta'; the torchvision_resnet peer computes with 'torchvision'"]
