"""DeepLabv3+, MobileNetV2 (width 1.0), PASCAL VOC 2012 train_aug -> val.

As the official code's MobileNetV2 setting: "ASPP-lite" (no atrous branches: 1x1 branch + image
pooling), output stride 16, weight decay 4e-5; plus the v3+ decoder on the stride-4 (24-channel)
features with separable convs. Evaluates at output stride 8.
"""
from configs import base


def get_config():
  config = base.get_config()
  model = config.model
  model.backbone = 'mobilenetv2'
  model.mobilenet.width_multiplier = 1.0
  model.multi_grid = ()
  model.aspp_rates = ()  # ASPP-lite
  model.output_stride = 16
  model.eval_output_stride = 8
  model.decoder = True
  model.decoder_separable = True
  config.train.weight_decay = 4e-5
  return config
