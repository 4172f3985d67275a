"""DeepLabv3+, Xception-65, PASCAL VOC 2012 train_aug -> val (79.93 mIoU with decoder at OS 16 eval 8;
79.79 with separable ASPP and decoder, the 54.17B multiply-adds model of the paper's Table 5).

Separable ASPP (rates 6, 12, 18 at OS 16) with image pooling, decoder with 48 low-level channels and two
3x3 separable convs; weight decay 4e-5 for Xception; trains at output stride 16, evaluates at 8.
"""
from configs import base


def get_config():
  config = base.get_config()
  model = config.model
  model.backbone = 'xception65'
  model.multi_grid = ()  # the official Xception recipe uses none
  model.output_stride = 16
  model.eval_output_stride = 8
  model.aspp_separable = True
  model.decoder = True
  model.decoder_separable = True
  config.train.weight_decay = 4e-5
  return config
