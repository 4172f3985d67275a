"""DeepLabv3, ResNet-101, Cityscapes fine train -> val.

The v3 head (ASPP 6/12/18 at OS 16 with image pooling, multi-grid 1, 2, 4) on Cityscapes' 19 classes:
crops of 769, batch 8, 90k steps at learning rate 0.01; evaluated at output stride 8 on whole images.
"""
from configs import base, cityscapes


def get_config():
  config = cityscapes.set_cityscapes_data(base.get_config())
  model = config.model
  model.backbone = 'resnet101'
  model.multi_grid = (1, 2, 4)
  model.output_stride = 16
  model.eval_output_stride = 8
  return config
