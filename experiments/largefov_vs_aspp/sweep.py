"""LargeFOV (one fc6 branch at rate 12) against ASPP-L (four branches at 6, 12, 18, 24, summed): v2, VGG-16.

The v2 paper compares the heads on VGG-16 (its Table 3), so every point uses the VGG-16 variant of
configs/v2_voc.py that the config's docstring gives: fc6/fc7 of 1024 channels, base LR 1e-3, no MSC.
"""
BASE_CONFIG = 'configs/v2_voc.py'
PAPER_SOURCE = 'DeepLab v2 compares them on VGG-16; its VGG-16 figures are not listed here'
PAPER = {}

VGG = {'model.backbone': 'vgg16', 'model.fc_features': 1024, 'train.base_lr': 0.001,
       'model.msc_scales': ()}


def get_sweep():
  return {
      'largefov': dict(VGG, **{'model.head': 'largefov'}),
      'aspp_l': dict(VGG, **{'model.head': 'aspp_l'}),
  }
