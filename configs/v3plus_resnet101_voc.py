"""DeepLabv3+, ResNet-101 + decoder, PASCAL VOC 2012 train_aug -> val (78.85 mIoU at OS 16).

The paper's ResNet-101 decoder model (101.28B multiply-adds at 513): ordinary 3x3 convs in ASPP and
decoder. The stem is DeepLab's resnet_v1_101_beta (three 3x3 convs), the ResNet-101 of the official v3+
checkpoints; set --config.model.resnet.stem=torchvision to start from torchvision ImageNet weights.
"""
from configs import base


def get_config():
  config = base.get_config()
  model = config.model
  model.backbone = 'resnet101'
  model.resnet.stem = 'beta'
  model.multi_grid = (1, 2, 4)
  model.output_stride = 16
  model.eval_output_stride = 8
  model.decoder = True
  return config
