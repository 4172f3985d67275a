"""DeepLab configs started from torchvision's ImageNet backbones, where they compute its function.

  --config=configs/pretrained/torchvision_imagenet.py:vgg16          v1 LargeFOV (configs/v1_voc.py)
  --config=configs/pretrained/torchvision_imagenet.py:mobilenet_v2   v3+ MobileNetV2 (v3plus_mobilenetv2_voc)

vgg16 (--kind=torchvision_vgg16, vgg16-397923af.pth): conv1_1 .. conv5_3 load; fc6/fc7 start at
their initialisation (v1's are 1024-channel convs, the paper's subsampled from the ImageNet fc6/fc7).
Normalisation differs from the Caffe VGG-16 DeepLab v1 started from: torchvision's takes RGB in
[0, 1] minus the mean (0.485, 0.456, 0.406) divided by the std (0.229, 0.224, 0.225), which is this
config's 'imagenet' normalisation; Caffe's took BGR in [0, 255] minus (103.939, 116.779, 123.68) and no
division. The pools are DeepLab's (3x3, stride 2, rounding up, pool4/pool5 at stride 1) where
torchvision's are 2x2: the same weights, DeepLab's function.
mobilenet_v2 (--kind=torchvision_mobilenet_v2, mobilenet_v2-b0353104.pth or -7ebf99e0.pth): the backbone
to its 320-channel features; its 1280-channel last conv and classifier are not DeepLab's. torchvision's
BatchNorm epsilon 1e-5 (the official graph's is 1e-3) and ImageNet normalisation.
"""
from configs import v1_voc, v3plus_mobilenetv2_voc

ARGS = ('vgg16', 'mobilenet_v2')


def get_config(arg: str = 'vgg16'):
  if arg not in ARGS:
    raise ValueError(f"torchvision_imagenet takes one of {', '.join(':' + a for a in ARGS)}, got {arg!r}")
  if arg == 'vgg16':
    config = v1_voc.get_config()
  else:
    config = v3plus_mobilenetv2_voc.get_config()
    config.model.mobilenet.channel_rounding = 'torchvision'  # the same channels at width 1.0
    config.model.backbone_bn_epsilon = 1e-5  # torchvision's BatchNorm2d
  config.data.normalization = 'imagenet'  # torchvision's mean and std (configs/base.py's)
  return config
