"""DeepLab v2 ASPP-L, ResNet-101 with multi-scale inputs, PASCAL VOC 2012 train_aug -> val.

The v2 paper's best VOC model without COCO: ASPP-L (4 branches at rates 6, 12, 18, 24, logits summed)
on ResNet-101 at output stride 8, MSC training at scales 1, 0.75, 0.5 (max fusion, loss on every scale
and on the fused output), frozen BatchNorm as in Caffe, batch 10, poly learning rate 2.5e-4 (power 0.9),
20k steps, crops of 321, random scaling 0.5-1.5. As in the released model, each ResNet branch is a
single 3x3 conv to the classes (fc_features=0). The VGG-16 variant: --config.model.backbone=vgg16
--config.model.fc_features=1024 --config.train.base_lr=0.001 --config.model.msc_scales='()'.
Learning-rate multipliers as in the released prototxt: the classifier (each branch's last conv) 10x,
its biases 20x with no decay, BatchNorm's scales and offsets frozen (lr_mult 0, as the statistics);
the dense CRF with the 2011 densecrf's per-pixel normalisation that v2 ran.
Geometry: Caffe's corner-aligned Interp; scales fused by max on the 1.0 scale's logit grid
(model.msc_fuse_at='logits'); each scale's loss is on that grid too (the released prototxt
compares each scale's own logits with labels shrunk to them).
"""
from configs import base


def get_config():
  config = base.get_config()
  model = config.model
  model.backbone = 'resnet101'
  model.head = 'aspp_l'
  model.asppl_rates = (6, 12, 18, 24)
  model.fc_features = 0
  model.output_stride = 8
  model.multi_grid = ()
  model.msc_scales = (1.0, 0.75, 0.5)
  model.fine_tune_batch_norm = False
  config.data.crop_size = 321
  config.train.upsample_logits = False  # the prototxt's label_shrink: labels subsampled by 8
  config.data.max_scale = 1.5
  train = config.train
  train.batch_size = 10
  train.base_lr = 2.5e-4
  train.weight_decay = 5e-4  # on kernels; biases: decay_mult 0
  train.last_layers = ('classifier',)  # fc1_voc12_c0..c3 (fc8 of each branch with fc_features)
  train.last_layer_lr_multiplier = 10.0  # lr_mult 10 (biases 20 with bias_lr_multiplier)
  train.bias_lr_multiplier = 2.0  # every bias lr_mult 2
  train.batch_norm_lr_multiplier = 0.0  # BatchNorm/Scale layers lr_mult 0 (fine_tune_batch_norm=False)
  train.num_steps = 20_000
  config.crf.normalization = 'per_pixel'  # the 2011 densecrf's D^-1 K
  config.crf.enabled = True  # v2's CRF (base.py's values are v2's ResNet ones): 76.35 -> 77.69 mIoU
  return config
