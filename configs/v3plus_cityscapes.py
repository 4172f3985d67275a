"""DeepLabv3+, Xception-65, Cityscapes fine train -> val (78.79 mIoU in the v3+ paper).

Separable ASPP and decoder at OS 16, crops of 769, batch 8, 90k steps at learning rate 0.01, weight decay
4e-5; evaluated at output stride 8 on whole images.
"""
from configs import base, cityscapes


def get_config():
  config = cityscapes.set_cityscapes_data(base.get_config())
  model = config.model
  model.backbone = 'xception65'
  model.multi_grid = ()
  model.output_stride = 16
  model.eval_output_stride = 8
  model.aspp_separable = True
  model.decoder = True
  model.decoder_separable = True
  config.train.weight_decay = 4e-5
  return config
