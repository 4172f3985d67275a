"""torchvision's deeplabv3_resnet50 / _resnet101 / _mobilenet_v3_large, for weights converted by
deeplab_jax.convert.

  --config=configs/pretrained/torchvision_deeplabv3.py:resnet101   (or :resnet50, :mobilenet_v3_large)

The same function as torchvision's model: a 3x3 conv after the ASPP projection, dropout 0.5, and the
auxiliary FCN head the published COCO_WITH_VOC_LABELS weights carry (--config.model.aux_head=False for
a checkpoint without one). ResNets: output stride 8, no multi-grid, the first unit of each dilated
stage at the previous stage's rate. MobileNetV3-Large: output stride 16 (the last stage at rate 2),
ASPP rates 12/24/36 at that stride (torchvision's DeepLabHead default), the aux head on the 40-channel
stride-8 features. Data: PASCAL VOC 2012 (21 classes), ImageNet normalisation, as torchvision.
Geometry: torchvision's half-pixel resizing (align_corners=False), kept for parity with it.
"""
from configs import base

ARGS = ('resnet50', 'resnet101', 'mobilenet_v3_large')


def get_config(arg: str = 'resnet101'):
  if arg not in ARGS:
    raise ValueError(f"torchvision_deeplabv3 takes one of {', '.join(':' + a for a in ARGS)}, got "
                     f"{arg!r}")
  config = base.get_config()
  config.train.bias_lr_multiplier = 1.0  # PyTorch's SGD: one LR for every parameter
  config.train.decay_depthwise = True  # PyTorch's weight_decay reaches depthwise kernels too
  model = config.model
  model.multi_grid = ()
  model.aspp_post_conv = True
  model.dropout_rate = 0.5
  model.aux_head = True
  model.upsample_align_corners = False  # torchvision's interpolate(..., align_corners=False)
  model.bn_momentum = 0.9  # PyTorch's BatchNorm2d momentum 0.1 (the backbones' are in the registry)
  if arg == 'mobilenet_v3_large':
    model.backbone = 'mobilenetv3_large'
    model.output_stride = 16
    model.aspp_rates = (12, 24, 36)  # given at output stride 16, so used as they are
    model.mobilenet.width_multiplier = 1.0
  else:
    model.backbone = arg
    model.output_stride = 8
    model.resnet.dilation_style = 'torchvision'
    model.backbone_bn_momentum = 0.9  # torchvision ResNet's BatchNorm2d momentum 0.1
  return config
