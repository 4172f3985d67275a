"""The backbone registry: model.backbone name -> how to build it, its feature taps, and its checkpoints.

One entry per backbone, as scenic's model registry and flax's examples/imagenet models module keep
them: `deeplab.build_model` builds through it, `convert` reads which checkpoint kinds hold it, and a
new backbone is one entry here plus its module.
"""
import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import ml_collections

from deeplab_jax.errors import UserError
from deeplab_jax.models import mobilenet, mobilenet_v3, resnet, vgg, xception
from deeplab_jax.ops import atrous


@dataclasses.dataclass(frozen=True)
class Context:
  """What every backbone builder gets besides the model config."""
  norm: Any  # BatchNorm factory (layers.make_norm); `build` sets the backbone's momentum and epsilon
  output_stride: int
  dtype: Any
  conv_impl: atrous.ConvImpl
  remat: bool


@dataclasses.dataclass(frozen=True)
class Backbone:
  """A backbone of the registry.

  Attributes:
    build: (model config, Context) -> the flax module, returning a dict of features.
    out: the feature the head reads (the backbone's last).
    low_level: the stride-4 features the v3+ decoder reads.
    aux: the features torchvision's auxiliary FCN head reads, or None when it has no such tap.
    normalization: the data.normalization its ImageNet checkpoints were trained with.
    converters: the `convert --kind`s whose checkpoints hold this backbone.
    multi_grid_units: how many multi-grid rates it takes (None: no multi-grid; 0: one per unit of the
      last stage, set by model.resnet.blocks).
    residual: whether it has residual units (model.remat='backbone' rematerialises those).
    bn_momentum, bn_epsilon: its BatchNorm moving-average decay and epsilon when
      model.backbone_bn_momentum / backbone_bn_epsilon are 0: the official DeepLab code's
      (feature_extractor.extract_features) for the backbones it has, the weights' source otherwise.
  """
  build: Callable[[ml_collections.ConfigDict, Context], nn.Module]
  out: str
  low_level: str
  aux: str | None
  normalization: str
  converters: tuple[str, ...] = ()
  multi_grid_units: int | None = None
  residual: bool = True
  bn_momentum: float = 0.9997
  bn_epsilon: float = 1e-5

  @property
  def feature_keys(self) -> tuple[str, str, str | None]:
    return self.out, self.low_level, self.aux


def resnet_blocks(cfg: ml_collections.ConfigDict) -> tuple[int, ...]:
  """Units per stage: model.resnet.blocks, or the depth's standard ones (resnet50: 3, 4, 6, 3)."""
  return tuple(cfg.resnet.blocks) or resnet.STAGE_BLOCKS[int(cfg.backbone[len('resnet'):])]


def _multi_grid(cfg: ml_collections.ConfigDict) -> tuple[int, ...] | None:
  return tuple(cfg.multi_grid) or None


def _resnet(cfg, c: Context) -> nn.Module:
  return resnet.ResNet(resnet_blocks(cfg), c.norm, c.output_stride, _multi_grid(cfg), cfg.resnet.width,
                       cfg.resnet.stem, cfg.resnet.dilation_style, c.dtype, c.conv_impl, c.remat,
                       cfg.resnet.layout)


def _xception(cfg, c: Context) -> nn.Module:
  return xception.Xception65(c.norm, c.output_stride, _multi_grid(cfg), cfg.xception.middle_units,
                             c.dtype, c.conv_impl, c.remat)


def _mobilenet_v2(cfg, c: Context) -> nn.Module:
  return mobilenet.MobileNetV2(c.norm, c.output_stride, cfg.mobilenet.width_multiplier, c.dtype,
                               c.conv_impl, c.remat, cfg.mobilenet.channel_rounding)


def _mobilenet_v3(cfg, c: Context) -> nn.Module:
  return mobilenet_v3.MobileNetV3Large(c.norm, c.output_stride, cfg.mobilenet.width_multiplier,
                                       c.dtype, c.conv_impl, c.remat, bn_epsilon=c.norm.keywords['epsilon'])


def _vgg(cfg, c: Context) -> nn.Module:
  del cfg
  return vgg.VGG16(c.output_stride, c.dtype, c.conv_impl)


# BatchNorm: official DeepLab feature_extractor.extract_features: ResNet arg scope decay 0.95, epsilon
# 1e-5; Xception 0.9997, 1e-3; MobileNetV2 slim's training_scope decay 0.997 with slim.batch_norm's
# epsilon 1e-3. MobileNetV3-Large follows torchvision's weights: BatchNorm2d(eps=0.001, momentum=0.01).
_RESNET = dict(build=_resnet, out='stage4', low_level='low_level', aux='stage3', normalization='imagenet',
               converters=('torchvision_deeplabv3', 'torchvision_resnet', 'smp_deeplabv3plus', 'tf_deeplab',
                           'tf_deeplab_imagenet'),
               multi_grid_units=0, bn_momentum=0.95, bn_epsilon=1e-5)
BACKBONES = {
    'resnet50': Backbone(**_RESNET),
    'resnet101': Backbone(**_RESNET),
    'vgg16': Backbone(_vgg, 'pool5', 'conv3', None, 'imagenet', converters=('torchvision_vgg16',),
                      residual=False),
    'xception65': Backbone(_xception, 'exit', 'low_level', None, 'inception',
                           converters=('tf_deeplab', 'tf_deeplab_imagenet', 'timm_xception65'),
                           multi_grid_units=3, bn_momentum=0.9997, bn_epsilon=1e-3),
    'mobilenetv2': Backbone(_mobilenet_v2, 'out', 'low_level', None, 'inception',
                            converters=('tf_deeplab', 'tf_deeplab_imagenet', 'torchvision_mobilenet_v2'),
                            bn_momentum=0.997, bn_epsilon=1e-3),
    # aux: torchvision's tap, the stride-8 40-channel unit.
    'mobilenetv3_large': Backbone(_mobilenet_v3, 'out', 'low_level', 'aux', 'imagenet',
                                  converters=('torchvision_deeplabv3', 'torchvision_mobilenet_v3'),
                                  bn_momentum=0.99, bn_epsilon=1e-3),
}


def get(name: str) -> Backbone:
  """The registry entry of model.backbone `name`; UserError listing the known ones otherwise."""
  if name not in BACKBONES:
    raise UserError(f'Unknown model.backbone {name!r}; known: {", ".join(BACKBONES)}.')
  return BACKBONES[name]


def check_multi_grid(cfg: ml_collections.ConfigDict) -> None:
  """model.multi_grid has one rate per unit it applies to, on a backbone that takes it."""
  multi_grid, entry = tuple(cfg.multi_grid), get(cfg.backbone)
  if not multi_grid:
    return
  if entry.multi_grid_units is None:
    raise UserError(f'model.multi_grid applies to resnet and xception65 backbones, not '
                    f'{cfg.backbone}; set model.multi_grid=().')
  if entry.multi_grid_units == 0:
    blocks = resnet_blocks(cfg)
    if len(multi_grid) != blocks[-1]:
      raise UserError(f'model.multi_grid {multi_grid} needs one rate per unit of the last '
                      f'stage, which has {blocks[-1]} (model.resnet.blocks {blocks}).')
  elif len(multi_grid) != entry.multi_grid_units:
    raise UserError(f'model.multi_grid {multi_grid} needs {entry.multi_grid_units} rates for '
                    f'{cfg.backbone} (one per separable conv of the last exit-flow block).')


def batch_norm_constants(cfg: ml_collections.ConfigDict) -> tuple[float, float]:
  """(momentum, epsilon) of the backbone's BatchNorm: model.backbone_bn_momentum / _epsilon, each 0
  meaning the registry's default for model.backbone."""
  entry = get(cfg.backbone)
  return cfg.backbone_bn_momentum or entry.bn_momentum, cfg.backbone_bn_epsilon or entry.bn_epsilon


def build(cfg: ml_collections.ConfigDict, context: Context) -> nn.Module:
  """The backbone module named by cfg.backbone, its BatchNorm at batch_norm_constants(cfg)."""
  check_multi_grid(cfg)
  momentum, epsilon = batch_norm_constants(cfg)
  norm = functools.partial(context.norm, momentum=momentum, epsilon=epsilon)
  return get(cfg.backbone).build(cfg, dataclasses.replace(context, norm=norm))
