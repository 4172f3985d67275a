"""DeepLabv3+ Xception-65 on PASCAL VOC (configs/v3plus_voc.py) started from timm's ImageNet xception65.

  python -m deeplab_jax.convert --kind=timm_xception65 --source=xception65.tf_in1k.safetensors \
      --config=configs/pretrained/timm_xception65.py --workdir=W

timm's `xception65.tf_in1k` is a port of the official DeepLab ImageNet Xception-65
(deeplabv3_xception_2018_01_04), `xception65.ra3_in1k` timm's own training; both take inputs in
[-1, 1] (timm's mean = std = 0.5) and use BatchNorm epsilon 1e-3, as the official network: the v3+
recipe itself, with the inception normalisation.
"""
from configs import v3plus_voc


def get_config():
  config = v3plus_voc.get_config()
  config.data.normalization = 'inception'  # timm's mean = std = (0.5, 0.5, 0.5) on [0, 1]
  config.model.backbone_bn_epsilon = 1e-3  # timm's BatchNorm2d(eps=.001), the registry's too
  return config
