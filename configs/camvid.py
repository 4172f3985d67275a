"""CamVid street scenes (11 classes, SegNet's split: 367 train, 101 val), from scratch on a CPU.

  --config=configs/camvid.py            DeepLabv3, MobileNetV3-Large (torchvision's function)
  --config=configs/camvid.py:v3plus     DeepLabv3+, MobileNetV2 (decoder on the stride-4 features)
  --config=configs/camvid.py:tiny       a two-minute v3 on a small ResNet at quarter resolution (the
                                        suite's real-data learning test)

Data: the folder dataset over SegNet's CamVid layout, ROOT/train + ROOT/trainannot, ROOT/val +
ROOT/valannot (480x360 RGB PNGs, label PNGs of class indices 0..10, 11 = void, ignored). Set
--config.data.root to that folder.

The recipe is DeepLab's (poly LR, SGD with momentum 0.9, random scale + crop + flip, corner-aligned
geometry, output stride 16) sized for 2 CPU cores and no ImageNet weights (so :mobilenetv3 draws its
weights as torchvision's weights=None model does, model.init_scheme='torchvision'): training at half
resolution (scales 0.375-0.75 of the 480x360 frames, crops of 161 = 16 * 10 + 1), evaluation at scale
0.5 with the predictions resized back, so that the metrics are against the full-resolution labels.
"""
from configs import base

CAMVID_CLASSES = ('sky', 'building', 'pole', 'road', 'pavement', 'tree', 'sign', 'fence', 'car',
                  'pedestrian', 'bicyclist')
# The colours of the CamVid README (index = class).
CAMVID_PALETTE = ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (0, 0, 192),
                  (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192))
CAMVID_VOID = 11
ARGS = ('mobilenetv3', 'v3plus', 'tiny')


def get_config(arg: str = 'mobilenetv3'):
  if arg not in ARGS:
    raise ValueError(f"camvid takes one of {', '.join(':' + a for a in ARGS)}, got {arg!r}")
  config = base.get_config()
  data = config.data
  data.dataset = 'folder'
  data.root = 'data/camvid'
  data.image_dir = '{split}'  # ROOT/train, ROOT/val
  data.label_dir = '{split}annot'  # ROOT/trainannot, ROOT/valannot
  data.train_split = 'train'
  data.eval_split = 'val'
  data.num_classes = len(CAMVID_CLASSES)
  data.class_names = CAMVID_CLASSES
  data.palette = CAMVID_PALETTE
  data.ignore_label = CAMVID_VOID
  data.crop_size = 161
  data.min_scale = 0.375
  data.max_scale = 0.75
  data.scale_step = 0.125
  data.eval_size = 481  # the 480x360 frames padded to OS * k + 1; inference runs at eval.scales
  config.eval.scales = (0.5,)
  config.eval.batch_size = 8

  model = config.model
  model.output_stride = 16
  model.multi_grid = ()
  if arg == 'v3plus':
    model.backbone = 'mobilenetv2'
    model.aspp_rates = ()  # the official MobileNetV2 "ASPP-lite": 1x1 branch + image pooling
    model.decoder = True
    model.decoder_separable = True
    data.normalization = 'inception'
  else:
    model.backbone = 'mobilenetv3_large'
    model.aspp_rates = (12, 24, 36)  # torchvision's DeepLabHead rates for MobileNetV3, at output stride 16
    data.normalization = 'imagenet'
    # From scratch, torchvision's initialisation (small depthwise and head kernels) trains far faster:
    # 300 steps reach 32.93 val mIoU against 18.85 with the modules' own (BENCHMARKS.md).
    model.init_scheme = 'torchvision'
  model.bn_momentum = 0.99  # a short run needs moving statistics that follow the weights quickly
  model.backbone_bn_momentum = 0.99

  train = config.train
  # A short run from scratch outruns BatchNorm's moving averages: at 500 steps :mobilenetv3 scores 11.20
  # val mIoU with them and 37.31 with precise statistics (BENCHMARKS.md), which the last checkpoint keeps.
  train.precise_bn_batches = 50
  train.batch_size = 8
  train.num_steps = 1500
  train.base_lr = 0.02  # from scratch: above the 0.007 of ImageNet fine-tuning
  train.weight_decay = 4e-5  # the official MobileNet setting
  train.log_every = 50
  train.checkpoint_every = 500
  if arg == 'tiny':  # the quickstart's network: DeepLabv3 (multi-grid, ASPP 6/12/18) on a small ResNet
    data.crop_size = 97
    data.min_scale, data.max_scale, data.scale_step = 0.25, 0.375, 0.125
    config.eval.scales = (0.25,)
    model.backbone = 'resnet50'
    model.resnet.blocks, model.resnet.width = (1, 1, 1, 3), 16
    model.multi_grid, model.aspp_rates, model.aspp_features = (1, 2, 4), (6, 12, 18), 64
    data.normalization = 'imagenet'
    train.num_steps = 400
    train.base_lr = 0.1
    train.log_every = 50
    train.checkpoint_every = 400
  return config
