"""DeepLab v1 LargeFOV, VGG-16, PASCAL VOC 2012 train_aug -> val (67.64 mIoU with CRF, 62.25 before).

VGG-16 with pool4/pool5 at stride 1 and conv5 at rate 2 (output stride 8), fc6 3x3 at rate 12 with 1024
channels, fc7 1x1 1024, dropout 0.5, 1x1 logits upsampled bilinearly. The v1 paper's recipe: batch 20,
learning rate 1e-3, momentum 0.9, weight decay 5e-4, crops of 306; its step schedule (x0.1 every 2000
iterations, 6000 in all) is approximated here by the poly schedule over 6000 steps. The dense CRF
runs as post-processing at evaluation (config.crf), reported beside the plain result, with the 2011
densecrf's per-pixel normalisation that v1 ran. Learning-rate multipliers as in the released
prototxt: every bias 2x (no decay), the classifier fc8 10x (its bias 20x).
Geometry: corner-aligned (Caffe's Interp) at evaluation; the loss is on the stride-8 logit grid.
Crops of 305 = 8 * 38 + 1, one pixel under the prototxt's 306: with Caffe's rounded-up pooling a 306
crop gives 40 features, the last one on pixel 312, past the crop's edge, so the stride-8 grid and
the labels subsampled to it would drift by up to 7 px across the crop.
"""
from configs import base


def get_config():
  config = base.get_config()
  model = config.model
  model.backbone = 'vgg16'
  model.head = 'largefov'
  model.largefov_rate = 12
  model.fc_features = 1024
  model.output_stride = 8
  model.multi_grid = ()
  model.image_pooling = False
  config.data.crop_size = 305  # 8k + 1 (the prototxt's 306, see above)
  config.data.min_scale = config.data.max_scale = 1.0  # v1 trained without scale augmentation
  train = config.train
  train.batch_size = 20
  train.base_lr = 0.001
  train.weight_decay = 5e-4  # on kernels; biases: decay_mult 0
  train.last_layers = ('classifier',)  # fc8
  train.last_layer_lr_multiplier = 10.0  # fc8 lr_mult 10 (its bias 20 with bias_lr_multiplier)
  train.bias_lr_multiplier = 2.0  # every bias lr_mult 2
  train.num_steps = 6000
  train.upsample_logits = False  # the prototxt's label_shrink: loss against labels subsampled by 8
  # CRF-LargeFOV: eval reports with and without the CRF. v1 searched w1 3..6, theta_alpha 30..100 and
  # theta_beta 3..6; DeepLab v2's ResNet-101 values (w1 4, theta_alpha 67, theta_beta 3) are kept.
  config.crf.enabled = True
  config.crf.normalization = 'per_pixel'  # the 2011 densecrf's D^-1 K
  return config
