"""DeepLabv3, ResNet-101, PASCAL VOC 2012 train_aug -> val: the paper's recipe (77.21 mIoU at OS 16).

Trains at output stride 16 and evaluates at 8 (78.51 in the paper), as the official DeepLab README.
Expects VOC 2012 at data/VOCdevkit/VOC2012 and SBD at data/benchmark_RELEASE (train_aug is built from
both; see the README's Datasets section).
"""
from configs import base


def get_config():
  config = base.get_config()
  config.model.backbone = 'resnet101'
  config.model.output_stride = 16
  config.model.eval_output_stride = 8
  config.model.multi_grid = (1, 2, 4)
  return config
