"""DeepLabv3+, Xception-65, Cityscapes fine train -> val (78.79 mIoU in the v3+ paper).

The VOC v3+ model (separable ASPP and decoder at OS 16, weight decay 4e-5, evaluated at output stride 8)
on Cityscapes: crops of 769, batch 8, 90k steps at learning rate 0.01, whole images at eval.
"""
from configs import cityscapes, v3plus_voc


def get_config():
  return cityscapes.set_cityscapes_data(v3plus_voc.get_config())
