"""Dense CRF post-processing on and off: DeepLab v1 LargeFOV (VGG-16) on VOC 2012 val.

Needs config.crf (crf.enabled), which another branch adds: until it is merged this sweep fails
validation with "unknown config field 'crf.enabled'", and tests/experiments/test_sweep.py skips it.
"""
BASE_CONFIG = 'configs/v1_voc.py'
PAPER_SOURCE = 'DeepLab v1 LargeFOV val: 67.64 with CRF (DeepLab v1 paper), 62.25 without (configs/v1_voc.py)'
PAPER = {'no_crf': 62.25, 'crf': 67.64}
REQUIRES = ('crf',)  # config groups that must exist before this sweep can validate


def get_sweep():
  return {'no_crf': {'crf.enabled': False}, 'crf': {'crf.enabled': True}}
