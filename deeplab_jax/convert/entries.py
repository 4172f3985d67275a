"""Module correspondences the peers share.

An entry says: the deeplab_jax module at this '/'-joined path takes the PyTorch module at this
'.'-joined prefix, as a 'conv' (kernel), 'conv_bias' (kernel + bias) or 'bn' (BatchNorm).
"""
Entry = tuple[str, str, str]


def conv_bn(jax_path: str, torch_conv: str, torch_bn: str) -> list[Entry]:
  """A ConvBNReLU at jax_path from a PyTorch Conv2d and BatchNorm2d."""
  return [(f'{jax_path}/conv', torch_conv, 'conv'), (f'{jax_path}/bn', torch_bn, 'bn')]


def separable_bn(jax_path: str, torch_separable: str, torch_bn: str) -> list[Entry]:
  """A SeparableConvBNReLU (no depthwise BN) from smp's SeparableConv2d (depthwise, pointwise) + BN."""
  return [(f'{jax_path}/depthwise', f'{torch_separable}.0', 'conv'),
          (f'{jax_path}/pointwise', f'{torch_separable}.1', 'conv'), (f'{jax_path}/bn', torch_bn, 'bn')]


def aspp_entries(jax_path: str, torch_aspp: str, separable: bool) -> list[Entry]:
  """torchvision's / smp's ASPP (convs.0-3, convs.4 = pooling, project) onto models.aspp.ASPP."""
  entries = conv_bn(f'{jax_path}/branch0', f'{torch_aspp}.convs.0.0', f'{torch_aspp}.convs.0.1')
  for i in (1, 2, 3):
    branch = f'{torch_aspp}.convs.{i}'
    entries += (separable_bn(f'{jax_path}/branch{i}', f'{branch}.0', f'{branch}.1') if separable else
                conv_bn(f'{jax_path}/branch{i}', f'{branch}.0', f'{branch}.1'))
  entries += conv_bn(f'{jax_path}/image_pooling/conv_bn', f'{torch_aspp}.convs.4.1',
                     f'{torch_aspp}.convs.4.2')
  return entries + conv_bn(f'{jax_path}/project', f'{torch_aspp}.project.0', f'{torch_aspp}.project.1')
