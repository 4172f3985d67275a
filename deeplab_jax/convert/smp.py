"""segmentation_models_pytorch's DeepLabV3Plus with a ResNet encoder, as module correspondences with
deeplab_jax's. smp's ResNet encoders are torchvision's ResNet, so the backbone is torchvision's."""
import ml_collections

from deeplab_jax.convert.entries import Entry, aspp_entries, conv_bn, separable_bn
from deeplab_jax.convert.torchvision import backbone_entries


def deeplabv3plus_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """smp's DeepLabV3Plus (encoder, decoder.aspp = ASPP + separable conv, block1, block2, head)."""
  return (backbone_entries(model_cfg, 'backbone', 'encoder.') +
          aspp_entries('head/aspp', 'decoder.aspp.0', separable=True) +
          separable_bn('head/post_conv', 'decoder.aspp.1', 'decoder.aspp.2') +
          conv_bn('head/low_level_project', 'decoder.block1.0', 'decoder.block1.1') +
          separable_bn('head/decoder_conv1', 'decoder.block2.0', 'decoder.block2.1') +
          [('head/logits', 'segmentation_head.0', 'conv_bias')])


def reference_config(backbone: str) -> ml_collections.ConfigDict:
  """configs/pretrained/smp_deeplabv3plus.py's config with this ResNet encoder."""
  from configs.pretrained import smp_deeplabv3plus
  return smp_deeplabv3plus.get_config(backbone)
