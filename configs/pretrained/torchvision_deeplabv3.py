"""torchvision's deeplabv3_resnet50 / deeplabv3_resnet101, for weights converted by deeplab_jax.convert.

  --config=configs/pretrained/torchvision_deeplabv3.py:resnet101   (or :resnet50)

The same function as torchvision's model: output stride 8, no multi-grid, the first unit of each
dilated stage at the previous stage's rate, a 3x3 conv after the ASPP projection, dropout 0.5, and the
auxiliary FCN head the published COCO_WITH_VOC_LABELS weights carry (--config.model.aux_head=False for
a checkpoint without one). Data: PASCAL VOC 2012 (21 classes), ImageNet normalisation, as torchvision.
"""
from configs import base


def get_config(arg: str = 'resnet101'):
  if arg not in ('resnet50', 'resnet101'):
    raise ValueError(f"torchvision_deeplabv3 takes ':resnet50' or ':resnet101', got {arg!r}")
  config = base.get_config()
  model = config.model
  model.backbone = arg
  model.output_stride = 8
  model.multi_grid = ()
  model.resnet.dilation_style = 'torchvision'
  model.aspp_post_conv = True
  model.dropout_rate = 0.5
  model.aux_head = True
  return config
