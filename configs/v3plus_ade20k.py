"""DeepLabv3+, Xception-65, ADE20K SceneParsing training -> validation (150 classes).

The VOC v3+ model (separable ASPP and decoder at OS 16, weight decay 4e-5, evaluated at output stride
8) with TF DeepLab's ADE20K recipe (ade20k.md: 513 crops, 150k steps, min/max resize 513) and
evaluation protocol: see configs/v3_ade20k.py.
"""
from configs import v3_ade20k, v3plus_voc


def get_config():
  return v3_ade20k.set_ade20k_data(v3plus_voc.get_config())
