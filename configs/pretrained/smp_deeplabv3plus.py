"""segmentation_models_pytorch 0.6 DeepLabV3Plus(encoder_name='resnet101'), for converted weights.

  --config=configs/pretrained/smp_deeplabv3plus.py

smp's defaults: encoder output stride 16 with the whole last stage at rate 2 (no multi-grid), ASPP
rates (12, 24, 36), separable ASPP branches and decoder conv with no BN between depthwise and
pointwise, a separable 3x3 after the projection, one decoder conv, dropout 0.5, and bilinear
upsampling with align_corners=True. smp needs image sides divisible by 16 (its convention, kept for
parity: the DeepLab configs use sides of OS * k + 1 instead).
"""
from configs import base


def get_config(arg: str = 'resnet101'):
  if arg not in ('resnet50', 'resnet101'):
    raise ValueError(f"smp_deeplabv3plus takes ':resnet50' or ':resnet101', got {arg!r}")
  config = base.get_config()
  config.train.bias_lr_multiplier = 1.0  # PyTorch's SGD: one LR for every parameter
  config.train.decay_depthwise = True  # PyTorch's weight_decay reaches depthwise kernels too
  model = config.model
  model.backbone = arg
  model.output_stride = 16
  model.multi_grid = ()
  model.aspp_rates = (12, 24, 36)
  model.aspp_separable = True
  model.separable_depthwise_bn = False
  model.aspp_post_conv = True
  model.decoder = True
  model.decoder_convs = 1
  model.decoder_separable = True
  model.dropout_rate = 0.5
  model.upsample_align_corners = True
  model.bn_momentum = model.backbone_bn_momentum = 0.9  # PyTorch's BatchNorm2d momentum 0.1
  return config
