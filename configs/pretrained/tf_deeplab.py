"""The official TF DeepLab model zoo's checkpoints (tensorflow/models research/deeplab/g3doc/model_zoo.md),
each as the config computing the official function, for weights converted by deeplab_jax.convert.

  --config=configs/pretrained/tf_deeplab.py:xception65_coco_voc_trainaug   (or another name in ARGS)

Segmentation models (--kind=tf_deeplab), named as the zoo names them:
  xception65_coco_voc_trainaug, xception65_coco_voc_trainval      VOC 2012, 21 classes
  mobilenetv2_coco_voc_trainaug, mobilenetv2_coco_voc_trainval    VOC, no ASPP (1x1 + image pooling)
  mobilenetv2_dm05_coco_voc_trainaug, mobilenetv2_dm05_coco_voc_trainval   the same at width 0.5
  xception65_cityscapes_trainfine, mobilenetv2_coco_cityscapes_trainfine    Cityscapes, 19 classes
  xception65_ade20k_train, mobilenetv2_ade20k_train (with decoder, 257 px)  ADE20K, 150 classes
ImageNet backbones (--kind=tf_deeplab_imagenet), as starts of the official v3+ VOC recipe:
  xception65_imagenet, resnet_v1_50_beta_imagenet, resnet_v1_101_beta_imagenet

What every one shares with the official code (train.py / eval.py flags of local_test*.sh and the zoo
page): input in [-1, 1] (feature_extractor's _preprocess_zero_mean_unit_range, all three backbones),
corner-aligned resizing on sides OS * k + 1, ASPP rates 6/12/18 at OS 16 (12/24/36 at 8), image
pooling, concat_projection dropout 0.1, BatchNorm epsilons of feature_extractor (Xception 1e-3,
MobileNetV2 1e-3, ResNet 1e-5; heads 1e-5), no multi-grid for Xception (the zoo's models trained
without), multi-grid (1, 2, 4) for the ResNets (the official resnet_v1_*_beta recipe), separable ASPP
and decoder convs (aspp_with_separable_conv, decoder_use_separable_conv default True) for Xception,
ordinary ones for the ResNets (the paper's ResNet-101 + decoder model). Evaluation: the zoo's
single-scale number is at eval_output_stride 16 (MobileNetV2, Xception on VOC/Cityscapes); its
multi-scale number is --config.model.eval_output_stride=8 --config.eval.scales=... --config.eval.flip=True
(the scales each entry's docstring line gives).
"""
from configs import base, cityscapes

VOC = ('xception65_coco_voc_trainaug', 'xception65_coco_voc_trainval', 'mobilenetv2_coco_voc_trainaug',
       'mobilenetv2_coco_voc_trainval', 'mobilenetv2_dm05_coco_voc_trainaug',
       'mobilenetv2_dm05_coco_voc_trainval')
CITYSCAPES = ('xception65_cityscapes_trainfine', 'mobilenetv2_coco_cityscapes_trainfine')
ADE20K = ('xception65_ade20k_train', 'mobilenetv2_ade20k_train')
IMAGENET = ('xception65_imagenet', 'resnet_v1_50_beta_imagenet', 'resnet_v1_101_beta_imagenet')
ARGS = VOC + CITYSCAPES + ADE20K + IMAGENET
ADE20K_CLASSES = tuple(f'ade{i}' for i in range(1, 151))  # objectInfo150.csv's order (stored values 1..150)


def _xception(model) -> None:
  """Xception-65 + separable ASPP + decoder at stride 4 (the zoo's xception65 models)."""
  model.backbone = 'xception65'
  model.multi_grid = ()
  model.aspp_separable = True
  model.decoder = True
  model.decoder_separable = True


def _mobilenet_v2(model, width: float, decoder: bool) -> None:
  """MobileNetV2 with the zoo's ASPP-less head: 1x1 branch + image pooling, no atrous branches."""
  model.backbone = 'mobilenetv2'
  model.mobilenet.width_multiplier = width
  model.mobilenet.channel_rounding = 'official'
  model.multi_grid = ()
  model.aspp_rates = ()
  model.decoder = decoder
  model.decoder_separable = True


def _resnet_beta(model, depth: int) -> None:
  """resnet_v1_{depth}_beta (three 3x3 stem convs, slim layout), multi-grid (1, 2, 4), ASPP + decoder."""
  model.backbone = f'resnet{depth}'
  model.resnet.stem = 'beta'
  model.resnet.layout = 'slim'
  model.multi_grid = (1, 2, 4)
  model.decoder = True
  model.decoder_separable = False


def _ade20k(config, size: int) -> None:
  data = config.data
  data.dataset = 'ade20k'
  data.root = 'data/ADEChallengeData2016'
  data.train_split, data.eval_split = 'training', 'validation'
  data.num_classes = len(ADE20K_CLASSES)  # the checkpoint's 151 logits lose class 0 ('other') on convert
  data.class_names = ADE20K_CLASSES
  data.crop_size = data.eval_size = size
  config.train.num_steps = 150_000  # the official ADE20K recipe (local flags: 150k steps, lr 0.0001)
  config.train.base_lr = 1e-4


def get_config(arg: str = 'xception65_coco_voc_trainaug'):
  if arg not in ARGS:
    raise ValueError(f"tf_deeplab takes one of {', '.join(':' + a for a in ARGS)}, got {arg!r}")
  config = base.get_config()
  config.data.normalization = 'inception'  # [0, 255] -> [-1, 1]
  config.train.weight_decay = 4e-5  # official Xception / MobileNetV2 weight decay
  model = config.model
  model.output_stride = 16
  model.eval_output_stride = 16  # the zoo's single-scale numbers
  model.upsample_align_corners = True
  model.backbone_bn_momentum = model.backbone_bn_epsilon = 0.0  # the registry's: the official values
  if arg.startswith('xception65'):
    _xception(model)
  elif arg.startswith('mobilenetv2'):
    _mobilenet_v2(model, 0.5 if '_dm05_' in arg else 1.0, decoder=arg == 'mobilenetv2_ade20k_train')
  else:
    _resnet_beta(model, 50 if '_50_' in arg else 101)
    config.train.weight_decay = 1e-4  # official ResNet weight decay
  if arg in CITYSCAPES:
    cityscapes.set_cityscapes_data(config)
  elif arg == 'xception65_ade20k_train':
    _ade20k(config, 513)
  elif arg == 'mobilenetv2_ade20k_train':
    _ade20k(config, 257)  # the zoo resizes ADE20K images so their longer side is 257 for MobileNetV2
  if arg in IMAGENET:
    model.eval_output_stride = 8  # the v3+ recipe: train at 16, evaluate at 8
  return config
