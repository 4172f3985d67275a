"""torchvision's models: DeepLabV3 (ResNet-50/101, MobileNetV3-Large) and the ImageNet ResNet and
MobileNetV3-Large backbones, as module correspondences with deeplab_jax's."""
import ml_collections

from deeplab_jax.convert.entries import Entry, aspp_entries, conv_bn

# The ImageNet classifiers: no deeplab_jax model has them.
RESNET_CLASSIFIER = ('fc.weight', 'fc.bias')
MOBILENET_V3_CLASSIFIER = ('classifier.0.weight', 'classifier.0.bias', 'classifier.3.weight',
                           'classifier.3.bias')


def resnet_entries(blocks: tuple[int, ...], jax_path: str, torch_prefix: str) -> list[Entry]:
  """torchvision's ResNet (conv1, bn1, layerI.J.{conv,bn}K, downsample) onto models.resnet.ResNet."""
  entries = conv_bn(f'{jax_path}/stem/conv1', f'{torch_prefix}conv1', f'{torch_prefix}bn1')
  for i, num_units in enumerate(blocks):
    for j in range(num_units):
      unit, layer = f'{jax_path}/stage{i + 1}_unit{j + 1}', f'{torch_prefix}layer{i + 1}.{j}'
      for k in (1, 2, 3):
        entries += conv_bn(f'{unit}/conv{k}', f'{layer}.conv{k}', f'{layer}.bn{k}')
      if j == 0:
        entries += conv_bn(f'{unit}/downsample', f'{layer}.downsample.0', f'{layer}.downsample.1')
  return entries


def mobilenet_v3_entries(width_multiplier: float, jax_path: str, torch_prefix: str) -> list[Entry]:
  """torchvision's MobileNetV3 `features` (0: stem, 1-15: units' `block`, 16: last conv) onto
  models.mobilenet_v3.MobileNetV3Large. A unit's block is [expand,] depthwise, [SE,] project: conv +
  BN each, SE two biased convs (fc1, fc2); the layers present decide the indices."""
  from deeplab_jax.models import mobilenet_v3
  p = torch_prefix
  entries = [(f'{jax_path}/stem', f'{p}0.0', 'conv'), (f'{jax_path}/stem_bn', f'{p}0.1', 'bn')]
  channels = mobilenet_v3.unit_channels(width_multiplier)
  for n, (table, (inputs, expanded, _)) in enumerate(zip(mobilenet_v3.MOBILENETV3_LARGE_UNITS,
                                                        channels), 1):
    unit, block = f'{jax_path}/unit{n}', f'{p}{n}.block'
    layers = (['expand'] if expanded != inputs else []) + ['depthwise'] + (
        ['squeeze_excite'] if table[3] else []) + ['project']
    for j, layer in enumerate(layers):
      if layer == 'squeeze_excite':
        entries += [(f'{unit}/squeeze_excite/reduce', f'{block}.{j}.fc1', 'conv_bias'),
                    (f'{unit}/squeeze_excite/expand', f'{block}.{j}.fc2', 'conv_bias')]
      else:
        entries += [(f'{unit}/{layer}', f'{block}.{j}.0', 'conv'),
                    (f'{unit}/{layer}_bn', f'{block}.{j}.1', 'bn')]
  last = len(channels) + 1
  return entries + [(f'{jax_path}/last_conv', f'{p}{last}.0', 'conv'),
                    (f'{jax_path}/last_bn', f'{p}{last}.1', 'bn')]


def backbone_entries(model_cfg: ml_collections.ConfigDict, jax_path: str,
                     torch_prefix: str) -> list[Entry]:
  """The torchvision backbone of model_cfg.backbone (ResNet or MobileNetV3) at torch_prefix."""
  if model_cfg.backbone == 'mobilenetv3_large':
    return mobilenet_v3_entries(model_cfg.mobilenet.width_multiplier, jax_path, torch_prefix)
  from deeplab_jax.models import backbones
  return resnet_entries(backbones.resnet_blocks(model_cfg), jax_path, torch_prefix)


def deeplabv3_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """torchvision's DeepLabV3 (backbone, classifier = DeepLabHead, aux_classifier = FCNHead)."""
  return (backbone_entries(model_cfg, 'backbone', 'backbone.') +
          aspp_entries('head/aspp', 'classifier.0', separable=False) +
          conv_bn('head/post_conv', 'classifier.1', 'classifier.2') +
          [('head/logits', 'classifier.4', 'conv_bias')] +
          conv_bn('aux_head/conv_bn', 'aux_classifier.0', 'aux_classifier.1') +
          [('aux_head/logits', 'aux_classifier.4', 'conv_bias')])


def imagenet_resnet_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """An ImageNet ResNet's state_dict: the backbone's modules at the top level."""
  return backbone_entries(model_cfg, 'backbone', '')


def imagenet_mobilenet_v3_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """An ImageNet MobileNetV3-Large's state_dict: the backbone under `features`."""
  return backbone_entries(model_cfg, 'backbone', 'features.')


def reference_config(backbone: str) -> ml_collections.ConfigDict:
  """The config of configs/pretrained/torchvision_deeplabv3.py whose model.backbone is `backbone`."""
  from configs.pretrained import torchvision_deeplabv3
  for arg in torchvision_deeplabv3.ARGS:
    config = torchvision_deeplabv3.get_config(arg)
    if config.model.backbone == backbone:
      return config
  raise ValueError(f'configs/pretrained/torchvision_deeplabv3.py has no {backbone} config')


# ImageNet MobileNetV2's 1280-channel last conv and classifier, and VGG-16's fc6-fc8: no deeplab_jax
# model has them (DeepLab's MobileNetV2 stops at 320 channels; v1's fc6/fc7 are 1024-channel convs).
MOBILENET_V2_CLASSIFIER = ('features.18.0.weight', 'features.18.1.weight', 'features.18.1.bias',
                           'features.18.1.running_mean', 'features.18.1.running_var',
                           'classifier.1.weight', 'classifier.1.bias')
VGG16_CLASSIFIER = tuple(f'classifier.{i}.{leaf}' for i in (0, 3, 6) for leaf in ('weight', 'bias'))
# torchvision vgg16's `features` indices of conv1_1 .. conv5_3 (ReLUs and max pools in between).
VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def mobilenet_v2_entries(jax_path: str, torch_prefix: str) -> list[Entry]:
  """torchvision's MobileNetV2 `features` (0: stem, 1-17: inverted residuals) onto
  models.mobilenet.MobileNetV2. A unit's `conv` is [expand ConvBNReLU,] depthwise ConvBNReLU, project
  conv, project BN."""
  from deeplab_jax.models import mobilenet
  p = torch_prefix
  entries = [(f'{jax_path}/stem', f'{p}0.0', 'conv'), (f'{jax_path}/stem_bn', f'{p}0.1', 'bn')]
  n = 1
  for i, (t, _, units, _) in enumerate(mobilenet.MOBILENETV2_STAGES):
    for u in range(units):
      unit, conv = f'{jax_path}/stage{i + 1}_unit{u + 1}', f'{p}{n}.conv'
      layers = (['expand'] if t != 1 else []) + ['depthwise']
      for j, layer in enumerate(layers):
        entries += [(f'{unit}/{layer}', f'{conv}.{j}.0', 'conv'),
                    (f'{unit}/{layer}_bn', f'{conv}.{j}.1', 'bn')]
      entries += [(f'{unit}/project', f'{conv}.{len(layers)}', 'conv'),
                  (f'{unit}/project_bn', f'{conv}.{len(layers) + 1}', 'bn')]
      n += 1
  return entries


def imagenet_mobilenet_v2_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """torchvision's ImageNet mobilenet_v2: the backbone under `features`."""
  del model_cfg
  return mobilenet_v2_entries('backbone', 'features.')


def imagenet_vgg16_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """torchvision's ImageNet vgg16: conv1_1 .. conv5_3 (biased convs) under `features`."""
  from deeplab_jax.models import vgg
  del model_cfg
  names = [f'conv{b + 1}_{c + 1}' for b, (convs, _) in enumerate(vgg.VGG16_BLOCKS) for c in range(convs)]
  return [(f'backbone/{name}', f'features.{i}', 'conv_bias') for name, i in zip(names, VGG16_CONV_INDICES)]


def vgg16_reference_config(backbone: str) -> ml_collections.ConfigDict:
  """configs/v1_voc.py: DeepLab v1 on VGG-16 (torchvision's weights start it)."""
  del backbone
  from configs import v1_voc
  return v1_voc.get_config()
