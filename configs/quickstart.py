"""DeepLabv3 on a small ResNet and the built-in synthetic dataset: trains and evaluates on 2 CPU cores.

The architecture is DeepLabv3's (ResNet bottlenecks, atrous last stages, multi-grid, ASPP with image
pooling); only widths, depths and crop are shrunk so that a laptop finishes in minutes.
"""
from configs import base

SYNTHETIC_CLASSES = ('background', 'disc', 'box', 'triangle', 'star', 'ring')


def get_config():
  config = base.get_config()
  data = config.data
  data.dataset = 'synthetic'
  data.root = 'data/synthetic'
  data.label_dir = 'SegmentationClass'
  data.train_split = 'train'
  data.num_classes = len(SYNTHETIC_CLASSES)
  data.class_names = SYNTHETIC_CLASSES
  data.crop_size = 97  # OS * k + 1 (OS 16, 32): corner-aligned geometry
  data.eval_size = 193
  data.min_scale = 0.75  # centred on the eval scale: a short run has no time for 0.5-2.0
  data.max_scale = 1.25

  model = config.model
  model.backbone = 'resnet50'
  model.resnet.blocks = (1, 1, 1, 3)  # three units in the last stage for multi-grid (1, 2, 4)
  model.resnet.width = 16
  model.output_stride = 16
  model.aspp_features = 64
  model.bn_momentum = 0.9  # a short run needs moving statistics that follow the weights quickly
  model.backbone_bn_momentum = 0.9

  train = config.train
  train.batch_size = 16
  train.num_steps = 1200
  train.base_lr = 0.05
  train.log_every = 50
  train.checkpoint_every = 300
  config.eval.batch_size = 16
  return config
