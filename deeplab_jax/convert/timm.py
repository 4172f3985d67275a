"""timm's aligned Xception-65 (`xception65`; its `tf_in1k` weights are a port of the official DeepLab
ImageNet Xception-65), as module correspondences with deeplab_jax's."""
import ml_collections

from deeplab_jax.convert.entries import Entry, conv_bn

XCEPTION_CLASSIFIER = ('head.fc.weight', 'head.fc.bias')


def separable_bn(jax_path: str, torch_separable: str) -> list[Entry]:
  """timm's SeparableConv2d (conv_dw, bn_dw, conv_pw, bn_pw) onto a SeparableConvBNReLU with depthwise BN."""
  return [(f'{jax_path}/depthwise', f'{torch_separable}.conv_dw', 'conv'),
          (f'{jax_path}/depthwise_bn', f'{torch_separable}.bn_dw', 'bn'),
          (f'{jax_path}/pointwise', f'{torch_separable}.conv_pw', 'conv'),
          (f'{jax_path}/bn', f'{torch_separable}.bn_pw', 'bn')]


def xception65_entries(model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """timm's XceptionAligned (stem.0-1, blocks.0-2 entry, blocks.3-18 middle, blocks.19-20 exit) onto
  models.xception.Xception65."""
  middle = model_cfg.xception.middle_units
  entries = (conv_bn('backbone/conv1_1', 'stem.0.conv', 'stem.0.bn') +
             conv_bn('backbone/conv1_2', 'stem.1.conv', 'stem.1.bn'))
  names = ([f'entry_block{b}' for b in (1, 2, 3)] + [f'middle_unit{u}' for u in range(1, middle + 1)] +
           ['exit_block1', 'exit_block2'])
  for k, name in enumerate(names):
    for i in (1, 2, 3):
      entries += separable_bn(f'backbone/{name}/separable{i}', f'blocks.{k}.stack.conv{i}')
    if name.startswith('entry') or name == 'exit_block1':  # middle units add the identity; the last none
      entries += conv_bn(f'backbone/{name}/shortcut', f'blocks.{k}.shortcut.conv', f'blocks.{k}.shortcut.bn')
  return entries
