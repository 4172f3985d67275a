"""Assembles a DeepLab model (backbone + head + upsampling) from the `model` block of a config.

Every version of the family is one of these assemblies:
  v1 LargeFOV: vgg16 + 'largefov' head;  v2: resnet101 or vgg16 + 'aspp_l' head + msc_scales;
  v3: resnet or mobilenetv3_large + 'aspp' head;  v3+: resnet101, xception65 or mobilenetv2 + 'aspp'
  head + decoder.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax.errors import UserError
from deeplab_jax.models import (aspp, largefov, layers, mobilenet, mobilenet_v3, resnet, vgg,
                                xception)

# Feature names each backbone returns: (final features, stride-4 low-level features, aux-head input).
FEATURE_KEYS = {
    'resnet50': ('stage4', 'stage1', 'stage3'),
    'resnet101': ('stage4', 'stage1', 'stage3'),
    'vgg16': ('pool5', 'conv3', None),
    'xception65': ('exit', 'low_level', None),
    'mobilenetv2': ('out', 'low_level', None),
    'mobilenetv3_large': ('out', 'low_level', 'aux'),  # aux: torchvision's, the stride-8 40-ch unit
}
# The output stride at which each head's atrous rates are given (the stride its paper trained at).
RATES_REFERENCE_STRIDE = {'aspp': 16, 'largefov': 8, 'aspp_l': 8}


def scaled_size(size: int, scale: float) -> int:
  """Side of an image of side `size` resized by `scale`, as Caffe's Interp layer in DeepLab v2: 513 at
  0.75 -> 385, at 0.5 -> 257."""
  return int(round((size - 1) * scale)) + 1


class DeepLab(nn.Module):
  """backbone(images) -> head(features) -> logits bilinearly upsampled to the input size.

  A DeepLab instance is either a training model (batch statistics, dropout) or an inference one (moving
  statistics, no dropout): `build_model(train=...)` decides, and both apply the same variables.

  Attributes:
    backbone: returns a dict of features; `feature_keys` names (final, low-level, aux) among them.
    head: (final [B, h, w, C], low-level [B, H/4, W/4, C']) -> logits at its own stride.
    aux_head: optional classifier on the aux features (torchvision's FCNHead on ResNet stage 3 or on
      MobileNetV3-Large's first 40-channel unit).
    msc_scales: DeepLab v2's multi-scale inputs, e.g. (1.0, 0.75, 0.5): the same weights at each scale,
      logits max-fused. Empty for a single scale.
  """
  backbone: nn.Module
  head: nn.Module
  feature_keys: tuple[str, str | None, str | None]
  aux_head: nn.Module | None = None
  msc_scales: Sequence[float] = ()
  align_corners: bool = False

  def single_scale(self, images: jax.Array, size: tuple[int, int]) -> dict[str, jax.Array]:
    """Logits (and aux logits) of images [B, h, w, 3] upsampled to `size`, in float32."""
    out_key, low_key, aux_key = self.feature_keys
    features = self.backbone(images)
    logits = self.head(features[out_key], features[low_key] if low_key else None)
    outputs = {'logits': layers.resize_bilinear(logits.astype(jnp.float32), size, self.align_corners)}
    if self.aux_head is not None:
      aux = self.aux_head(features[aux_key])
      outputs['aux'] = layers.resize_bilinear(aux.astype(jnp.float32), size, self.align_corners)
    return outputs

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    """images [B, H, W, 3] normalised -> {'logits': [B, H, W, num_classes]}.

    With msc_scales, also 'scale_logits': a list of [B, H, W, num_classes], one per scale, whose
    elementwise max is 'logits'. 'aux' (when there is an aux head) comes from the first scale.
    """
    size = images.shape[1:3]
    if not self.msc_scales:
      return self.single_scale(images, size)
    per_scale = []
    for scale in self.msc_scales:
      scaled = layers.resize_bilinear(images, (scaled_size(size[0], scale), scaled_size(size[1], scale)))
      per_scale.append(self.single_scale(scaled, size))
    outputs = dict(per_scale[0])
    outputs['scale_logits'] = [o['logits'] for o in per_scale]
    outputs['logits'] = jnp.max(jnp.stack(outputs['scale_logits']), axis=0)
    return outputs


ATROUS_IMPLS = ('auto', 'dilation', 'space_to_batch')
REMAT_OPTIONS = ('none', 'backbone')


def _atrous_impl(cfg: ml_collections.ConfigDict) -> str:
  """cfg.atrous_impl checked; 'auto' is resolved per conv (regular or depthwise) by ops.atrous."""
  impl = cfg.get('atrous_impl', 'auto')  # configs saved before the field existed
  if impl not in ATROUS_IMPLS:
    raise UserError(f'model.atrous_impl={impl!r}; expected one of {", ".join(ATROUS_IMPLS)}.')
  return impl


def _remat(cfg: ml_collections.ConfigDict) -> bool:
  """Whether to rematerialise the backbone's units (cfg.remat == 'backbone')."""
  remat = cfg.get('remat', 'none')
  if remat not in REMAT_OPTIONS:
    raise UserError(f'model.remat={remat!r}; expected one of {", ".join(REMAT_OPTIONS)}.')
  if remat == 'backbone' and cfg.backbone == 'vgg16':
    raise UserError("model.remat='backbone' rematerialises residual units; vgg16 has none. "
                    "Set model.remat='none'.")
  return remat == 'backbone'


def _dtype(name: str) -> Any:
  return {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[name]


def build_backbone(cfg: ml_collections.ConfigDict, norm: layers.ModuleDef, output_stride: int,
                   dtype: Any) -> nn.Module:
  """The backbone named by cfg.backbone."""
  if cfg.backbone not in FEATURE_KEYS:
    raise UserError(f'Unknown model.backbone {cfg.backbone!r}; known: {", ".join(FEATURE_KEYS)}.')
  if output_stride not in (8, 16, 32):
    raise UserError(f'output stride must be 8, 16 or 32, got {output_stride}.')
  multi_grid = tuple(cfg.multi_grid) or None
  impl, remat = _atrous_impl(cfg), _remat(cfg)
  if cfg.backbone in ('resnet50', 'resnet101'):
    blocks = tuple(cfg.resnet.blocks) or resnet.STAGE_BLOCKS[int(cfg.backbone[6:])]
    if multi_grid and len(multi_grid) != blocks[-1]:
      raise UserError(f'model.multi_grid {multi_grid} needs one rate per unit of the last '
                      f'stage, which has {blocks[-1]} (model.resnet.blocks {blocks}).')
    return resnet.ResNet(blocks, norm, output_stride, multi_grid, cfg.resnet.width, cfg.resnet.stem,
                         cfg.resnet.dilation_style, dtype, impl, remat)
  if multi_grid and cfg.backbone != 'xception65':
    raise UserError(f'model.multi_grid applies to resnet and xception65 backbones, not '
                    f'{cfg.backbone}; set model.multi_grid=().')
  if cfg.backbone == 'xception65':
    if multi_grid and len(multi_grid) != 3:
      raise UserError(f'model.multi_grid {multi_grid} needs 3 rates for xception65 (one per separable '
                      'conv of the last exit-flow block).')
    return xception.Xception65(norm, output_stride, multi_grid, cfg.xception.middle_units, dtype, impl,
                               remat)
  if cfg.backbone == 'mobilenetv2':
    return mobilenet.MobileNetV2(norm, output_stride, cfg.mobilenet.width_multiplier, dtype, impl,
                                 remat)
  if cfg.backbone == 'mobilenetv3_large':
    return mobilenet_v3.MobileNetV3Large(norm, output_stride, cfg.mobilenet.width_multiplier, dtype,
                                         impl, remat)
  return vgg.VGG16(output_stride, dtype, impl)


def build_head(cfg: ml_collections.ConfigDict, num_classes: int, norm: layers.ModuleDef,
               output_stride: int, train: bool, dtype: Any) -> nn.Module:
  """The head named by cfg.head, its atrous rates rescaled to `output_stride`."""
  if cfg.head not in RATES_REFERENCE_STRIDE:
    raise UserError(f'Unknown model.head {cfg.head!r}; known: {", ".join(RATES_REFERENCE_STRIDE)}.')
  reference = RATES_REFERENCE_STRIDE[cfg.head]
  if cfg.head in ('largefov', 'aspp_l'):
    if cfg.decoder:
      raise UserError(f"model.decoder needs model.head='aspp', not {cfg.head!r}.")
    rates = (cfg.largefov_rate,) if cfg.head == 'largefov' else tuple(cfg.asppl_rates)
    return largefov.LargeFOVHead(num_classes, aspp.scale_rates(rates, output_stride, reference),
                                 cfg.fc_features, cfg.fc_dropout_rate, train, dtype, _atrous_impl(cfg))
  options = dict(features=cfg.aspp_features, image_pooling=cfg.image_pooling,
                 dropout_rate=cfg.dropout_rate, train=train, dtype=dtype, separable=cfg.aspp_separable,
                 depthwise_bn=cfg.separable_depthwise_bn, post_conv=cfg.aspp_post_conv,
                 atrous_impl=_atrous_impl(cfg))
  rates = aspp.scale_rates(cfg.aspp_rates, output_stride, reference)
  if cfg.decoder:
    return aspp.DeepLabV3PlusHead(num_classes, rates, norm, **options,
                                  low_level_features=cfg.decoder_low_level_features,
                                  decoder_convs=cfg.decoder_convs,
                                  decoder_separable=cfg.decoder_separable,
                                  align_corners=cfg.upsample_align_corners)
  return aspp.DeepLabV3Head(num_classes, rates, norm, **options)


def build_model(model_cfg: ml_collections.ConfigDict, num_classes: int, train: bool,
                output_stride: int | None = None, axis_name: str | None = None) -> DeepLab:
  """The DeepLab of `model_cfg` at `output_stride` (default: the config's training stride).

  The weights do not depend on the output stride, so a model trained at OS 16 evaluates at OS 8 by
  building it again with output_stride=8 and applying the same variables.
  """
  output_stride = output_stride or model_cfg.output_stride
  dtype = _dtype(model_cfg.dtype)
  norm = layers.make_norm(train, model_cfg.bn_momentum, model_cfg.bn_epsilon, dtype,
                          frozen=not model_cfg.fine_tune_batch_norm, axis_name=axis_name)
  backbone = build_backbone(model_cfg, norm, output_stride, dtype)
  head = build_head(model_cfg, num_classes, norm, output_stride, train, dtype)
  keys = FEATURE_KEYS[model_cfg.backbone]
  aux_head = None
  if model_cfg.aux_head:
    if keys[2] is None:
      raise UserError(f'model.aux_head sits on ResNet stage 3 or on MobileNetV3-Large\'s stride-8 '
                      f'features; backbone {model_cfg.backbone!r} has neither. Set '
                      'model.aux_head=False or use resnet50, resnet101 or mobilenetv3_large.')
    aux_head = aspp.FCNHead(num_classes, norm, model_cfg.aux_dropout_rate, train, dtype)
  if any(not 0 < s <= 4 for s in model_cfg.msc_scales):
    raise UserError(f'model.msc_scales must be in (0, 4], got {tuple(model_cfg.msc_scales)}.')
  return DeepLab(backbone, head, keys, aux_head, tuple(model_cfg.msc_scales),
                 model_cfg.upsample_align_corners)
