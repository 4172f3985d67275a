"""segmentation_models_pytorch 0.6 DeepLabV3Plus(encoder_name='resnet101'), for converted weights.

  --config=configs/pretrained/smp_deeplabv3plus.py

smp's defaults: encoder output stride 16 with the whole last stage at rate 2 (no multi-grid), ASPP
rates (12, 24, 36), separable ASPP branches and decoder conv with no BN between depthwise and
pointwise, a separable 3x3 after the projection, one decoder conv, dropout 0.5, and bilinear
upsampling with align_corners=True. smp needs image sides divisible by 16.
"""
from configs import base


def get_config(arg: str = 'resnet101'):
  if arg not in ('resnet50', 'resnet101'):
    raise ValueError(f"smp_deeplabv3plus takes ':resnet50' or ':resnet101', got {arg!r}")
  config = base.get_config()
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
  return config
