"""DeepLabv3+, ResNet-101 + decoder, PASCAL VOC 2012 train_aug -> val (78.85 mIoU at OS 16).

The paper's ResNet-101 decoder model (101.28B multiply-adds at 513): ordinary 3x3 convs in ASPP and
decoder. The backbone is DeepLab's resnet_v1_101_beta, the ResNet-101 of the official v3+ checkpoints:
three 3x3 convs in the stem, slim's unit layout (stride in the last unit of blocks 1-3) and the decoder
tap at block1/unit_2/conv3. To start from torchvision ImageNet weights instead, set
--config.model.resnet.stem=torchvision --config.model.resnet.layout=torchvision.
"""
from configs import base


def get_config():
  config = base.get_config()
  model = config.model
  model.backbone = 'resnet101'
  model.resnet.stem = 'beta'
  model.resnet.layout = 'slim'
  model.multi_grid = (1, 2, 4)
  model.output_stride = 16
  model.eval_output_stride = 8
  model.decoder = True
  return config
