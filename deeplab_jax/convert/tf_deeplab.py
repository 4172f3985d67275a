"""The official TF1 DeepLab's variables (tensorflow/models research/deeplab on tf-slim), as
correspondences with deeplab_jax's modules.

Scopes: the backbones xception_65/, resnet_v1_{50,101}/ (the resnet_v1_*_beta variants: three 3x3 stem
convs, model.resnet.layout='slim') and MobilenetV2/; the head's aspp0, aspp{1,2,3} (or
aspp{i}_depthwise + aspp{i}_pointwise when separable), image_pooling, concat_projection,
decoder/feature_projection0, decoder/decoder_conv{0,1}_{depthwise,pointwise} (separable) or
decoder/decoder_conv0/decoder_conv0_{1,2} (ordinary), and logits/semantic.
"""
import ml_collections

from deeplab_jax.convert.entries import Entry

# The ImageNet classifiers of backbone-only checkpoints (deeplab's xception_65 and resnet_v1_*_beta,
# slim's MobilenetV2 with its 1280-channel Conv_1): no deeplab_jax model has them.
IMAGENET_CLASSIFIERS = ('xception_65/logits/', 'resnet_v1_50/logits/', 'resnet_v1_101/logits/',
                        'MobilenetV2/Conv_1/', 'MobilenetV2/Logits/')


def conv_bn(jax_path: str, scope: str) -> list[Entry]:
  """A ConvBNReLU at jax_path from slim's conv2d + batch_norm at `scope`."""
  return [(f'{jax_path}/conv', scope, 'tf_conv'), (f'{jax_path}/bn', f'{scope}/BatchNorm', 'tf_bn')]


def separable_bn(jax_path: str, scope: str) -> list[Entry]:
  """A SeparableConvBNReLU (depthwise BN) from slim's `{scope}_depthwise` and `{scope}_pointwise`."""
  return [(f'{jax_path}/depthwise', f'{scope}_depthwise', 'tf_depthwise'),
          (f'{jax_path}/depthwise_bn', f'{scope}_depthwise/BatchNorm', 'tf_bn'),
          (f'{jax_path}/pointwise', f'{scope}_pointwise', 'tf_conv'),
          (f'{jax_path}/bn', f'{scope}_pointwise/BatchNorm', 'tf_bn')]


def xception65_entries(middle_units: int, jax_path: str) -> list[Entry]:
  """deeplab core/xception.py's xception_65 onto models.xception.Xception65."""
  scope = 'xception_65'
  entries = (conv_bn(f'{jax_path}/conv1_1', f'{scope}/entry_flow/conv1_1') +
             conv_bn(f'{jax_path}/conv1_2', f'{scope}/entry_flow/conv1_2'))
  units = [(f'entry_block{b}', f'entry_flow/block{b}/unit_1', True) for b in (1, 2, 3)]
  units += [(f'middle_unit{u}', f'middle_flow/block1/unit_{u}', False)
            for u in range(1, middle_units + 1)]
  units += [('exit_block1', 'exit_flow/block1/unit_1', True), ('exit_block2', 'exit_flow/block2/unit_1',
                                                                 False)]
  for name, unit, shortcut in units:
    module = f'{scope}/{unit}/xception_module'
    for i in (1, 2, 3):
      entries += separable_bn(f'{jax_path}/{name}/separable{i}', f'{module}/separable_conv{i}')
    if shortcut:
      entries += conv_bn(f'{jax_path}/{name}/shortcut', f'{module}/shortcut')
  return entries


def resnet_beta_entries(depth: int, blocks: tuple[int, ...], jax_path: str) -> list[Entry]:
  """deeplab core/resnet_v1_beta.py's resnet_v1_{depth}_beta onto models.resnet.ResNet (beta stem)."""
  scope = f'resnet_v1_{depth}'
  entries = []
  for k in (1, 2, 3):
    entries += conv_bn(f'{jax_path}/stem/conv1_{k}', f'{scope}/conv1_{k}')
  for i, num_units in enumerate(blocks):
    for j in range(num_units):
      unit = f'{jax_path}/stage{i + 1}_unit{j + 1}'
      bottleneck = f'{scope}/block{i + 1}/unit_{j + 1}/bottleneck_v1'
      for k in (1, 2, 3):
        entries += conv_bn(f'{unit}/conv{k}', f'{bottleneck}/conv{k}')
      if j == 0:
        entries += conv_bn(f'{unit}/downsample', f'{bottleneck}/shortcut')
  return entries


def mobilenet_v2_entries(jax_path: str) -> list[Entry]:
  """slim's MobilenetV2 (Conv, expanded_conv, expanded_conv_1 .. _16) onto models.mobilenet.MobileNetV2."""
  from deeplab_jax.models import mobilenet
  entries = [(f'{jax_path}/stem', 'MobilenetV2/Conv', 'tf_conv'),
             (f'{jax_path}/stem_bn', 'MobilenetV2/Conv/BatchNorm', 'tf_bn')]
  n = 0
  for i, (t, _, units, _) in enumerate(mobilenet.MOBILENETV2_STAGES):
    for u in range(units):
      unit = f'{jax_path}/stage{i + 1}_unit{u + 1}'
      scope = 'MobilenetV2/expanded_conv' + (f'_{n}' if n else '')
      layers = (['expand'] if t != 1 else []) + ['depthwise', 'project']
      for layer in layers:
        entries += [(f'{unit}/{layer}', f'{scope}/{layer}',
                     'tf_depthwise' if layer == 'depthwise' else 'tf_conv'),
                    (f'{unit}/{layer}_bn', f'{scope}/{layer}/BatchNorm', 'tf_bn')]
      n += 1
  return entries


def backbone_entries(model_cfg: ml_collections.ConfigDict, jax_path: str = 'backbone') -> list[Entry]:
  """The official backbone of model_cfg.backbone (xception65, resnet50/101, mobilenetv2)."""
  from deeplab_jax.models import backbones
  if model_cfg.backbone == 'xception65':
    return xception65_entries(model_cfg.xception.middle_units, jax_path)
  if model_cfg.backbone == 'mobilenetv2':
    return mobilenet_v2_entries(jax_path)
  depth = int(model_cfg.backbone[len('resnet'):])
  return resnet_beta_entries(depth, backbones.resnet_blocks(model_cfg), jax_path)


def head_entries(model_cfg: ml_collections.ConfigDict, jax_path: str = 'head') -> list[Entry]:
  """deeplab model.py's ASPP (or the ASPP-less 1x1 + image pooling), decoder and logits."""
  aspp = f'{jax_path}/aspp'
  entries = conv_bn(f'{aspp}/branch0', 'aspp0')
  for i in range(1, len(model_cfg.aspp_rates) + 1):
    entries += (separable_bn(f'{aspp}/branch{i}', f'aspp{i}') if model_cfg.aspp_separable else
                conv_bn(f'{aspp}/branch{i}', f'aspp{i}'))
  project = conv_bn(f'{aspp}/project', 'concat_projection')
  if model_cfg.image_pooling:
    entries += conv_bn(f'{aspp}/image_pooling/conv_bn', 'image_pooling')
    project[0] = (f'{aspp}/project/conv', 'concat_projection', 'tf_conv_pooling_first')
  entries += project
  if model_cfg.decoder:
    entries += conv_bn(f'{jax_path}/low_level_project', 'decoder/feature_projection0')
    for i in range(model_cfg.decoder_convs):
      entries += (separable_bn(f'{jax_path}/decoder_conv{i + 1}', f'decoder/decoder_conv{i}')
                  if model_cfg.decoder_separable else
                  conv_bn(f'{jax_path}/decoder_conv{i + 1}', f'decoder/decoder_conv0/decoder_conv0_{i + 1}'))
  return entries + [(f'{jax_path}/logits', 'logits/semantic', 'tf_conv_bias')]


def deeplab_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """A whole official DeepLab checkpoint (a model-zoo segmentation model)."""
  return backbone_entries(model_cfg) + head_entries(model_cfg)


def imagenet_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """A backbone-only official checkpoint (the zoo's ImageNet xception_65, resnet_v1_*_beta; slim's
  MobilenetV2)."""
  return backbone_entries(model_cfg)


REFERENCE_ARGS = {'xception65': 'xception65_coco_voc_trainaug',
                  'mobilenetv2': 'mobilenetv2_coco_voc_trainaug', 'resnet50': 'resnet_v1_50_beta_imagenet',
                  'resnet101': 'resnet_v1_101_beta_imagenet'}


def reference_config(backbone: str) -> ml_collections.ConfigDict:
  """The configs/pretrained/tf_deeplab.py config computing the official function on `backbone`."""
  from configs.pretrained import tf_deeplab
  return tf_deeplab.get_config(REFERENCE_ARGS[backbone])
