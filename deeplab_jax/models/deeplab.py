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
import numpy as np

from deeplab_jax.errors import UserError
from deeplab_jax.models import aspp, backbones, largefov, layers
from deeplab_jax.ops import atrous

# The output stride at which each head's atrous rates are given (the stride its paper trained at).
RATES_REFERENCE_STRIDE = {'aspp': 16, 'largefov': 8, 'aspp_l': 8}


class DeepLab(nn.Module):
  """backbone(images) -> head(features) -> logits bilinearly upsampled to the input size.

  A DeepLab instance is either a training model (batch statistics, dropout) or an inference one (moving
  statistics, no dropout): `build_model(train=...)` decides, and both apply the same variables.

  Attributes:
    backbone: returns a dict of features; `feature_keys` names (final, low-level, aux) among them
      (the backbone registry's taps).
    head: (final [B, h, w, C], low-level [B, H/4, W/4, C']) -> logits at its own stride.
    aux_head: optional classifier on the aux features (torchvision's FCNHead on ResNet stage 3 or on
      MobileNetV3-Large's first 40-channel unit).
    msc_scales: DeepLab v2's multi-scale inputs, e.g. (1.0, 0.75, 0.5): the same weights at each scale,
      logits max-fused. Empty for a single scale.
    upsample_align_corners: corner-aligned resizing (the official DeepLab's geometry: logits, decoder,
      image pyramid) instead of half-pixel (PyTorch's align_corners=False).
    msc_fuse_at: 'logits': each scale's logits resized to the logit grid of the largest scale (at
      least 1.0), max-fused there, then upsampled once (the official TF `multi_scale_logits` and v2's
      Caffe fc_fusion); 'input': each scale's logits upsampled to the input size first, then max-fused.
    upsample_logits: False leaves every output on the logit grid (the official --upsample_logits=False:
      the loss then compares with labels subsampled to it, as v1/v2 trained).
  """
  backbone: nn.Module
  head: nn.Module
  feature_keys: tuple[str, str | None, str | None]
  aux_head: nn.Module | None = None
  msc_scales: Sequence[float] = ()
  upsample_align_corners: bool = False
  msc_fuse_at: str = 'logits'
  upsample_logits: bool = True

  def _resize(self, x: jax.Array, size: tuple[int, int]) -> jax.Array:
    return layers.resize_bilinear(x, size, self.upsample_align_corners)

  def single_scale(self, images: jax.Array) -> dict[str, jax.Array]:
    """Logits (and aux logits) of images [B, h, w, 3] at the head's own stride, in float32."""
    out_key, low_key, aux_key = self.feature_keys
    features = self.backbone(images)
    outputs = {'logits': self.head(features[out_key], features[low_key] if low_key else None)}
    if self.aux_head is not None:
      outputs['aux'] = self.aux_head(features[aux_key])
    return {k: v.astype(jnp.float32) for k, v in outputs.items()}

  def _pyramid(self, images: jax.Array) -> list[dict[str, jax.Array]]:
    """single_scale of images resized by each of msc_scales."""
    size = images.shape[1:3]
    return [self.single_scale(self._resize(images, layers.scaled_size(size, scale,
                                                                      self.upsample_align_corners)))
            for scale in self.msc_scales]

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    """images [B, H, W, 3] normalised -> {'logits': [B, H, W, num_classes]}.

    With msc_scales, also 'scale_logits': a list of [B, H, W, num_classes], one per scale, whose
    elementwise max is 'logits' (on the logit grid, upsampled after, with msc_fuse_at='logits').
    'aux' (when there is an aux head) comes from the first scale. With upsample_logits=False every
    map stays on the logit grid (that of the largest scale, at least 1.0, with msc_scales).
    """
    size = images.shape[1:3]
    if not self.msc_scales:
      outputs = self.single_scale(images)
      grid = outputs['logits'].shape[1:3]
    else:
      outputs, grid = self._fuse(self._pyramid(images), size)
    target = size if self.upsample_logits else grid
    return {k: [self._resize(x, target) for x in v] if k == 'scale_logits' else self._resize(v, target)
            for k, v in outputs.items()}

  def _fuse(self, per_scale: list[dict[str, jax.Array]],
            size: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int]]:
    """(outputs with 'scale_logits' and their max as 'logits', the logit grid) of the pyramid's outputs."""
    top = int(np.argmax(self.msc_scales))
    grid = per_scale[top]['logits'].shape[1:3]
    if self.msc_scales[top] < 1:  # the 1.0 scale's grid, as the official max(1.0, max(image_pyramid))
      grid = layers.scaled_size(grid, 1 / self.msc_scales[top], self.upsample_align_corners)
    fuse_size = grid if self.msc_fuse_at == 'logits' else size
    outputs = dict(per_scale[0])
    outputs['scale_logits'] = [self._resize(o['logits'], fuse_size) for o in per_scale]
    outputs['logits'] = jnp.max(jnp.stack(outputs['scale_logits']), axis=0)
    return outputs, grid


REMAT_OPTIONS = ('none', 'backbone')
MSC_FUSE_AT = ('logits', 'input')
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
# Side of the dummy input shapes are inferred from: variable shapes do not depend on it, and it is a
# multiple of every output stride with room for VGG's pools.
SHAPE_INFERENCE_SIZE = 65


def _conv_impl(cfg: ml_collections.ConfigDict) -> atrous.ConvImpl:
  """model.atrous_impl, depthwise_impl and pointwise_impl, checked; each 'auto' is resolved per
  platform by ops.atrous from its measurements."""
  for choice, known in atrous.CONV_IMPL_CHOICES.items():
    value = cfg[f'{choice}_impl']
    if value not in known:
      raise UserError(f'model.{choice}_impl={value!r}; expected one of {", ".join(known)}.')
  return atrous.ConvImpl(cfg.atrous_impl, cfg.depthwise_impl, cfg.pointwise_impl)


def _remat(cfg: ml_collections.ConfigDict) -> bool:
  """Whether to rematerialise the backbone's units (cfg.remat == 'backbone')."""
  if cfg.remat not in REMAT_OPTIONS:
    raise UserError(f'model.remat={cfg.remat!r}; expected one of {", ".join(REMAT_OPTIONS)}.')
  if cfg.remat == 'backbone' and not backbones.get(cfg.backbone).residual:
    raise UserError(f"model.remat='backbone' rematerialises residual units; {cfg.backbone} has none. "
                    "Set model.remat='none'.")
  return cfg.remat == 'backbone'


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
                                 cfg.fc_features, cfg.fc_dropout_rate, train, dtype, _conv_impl(cfg))
  options = dict(aspp_features=cfg.aspp_features, image_pooling=cfg.image_pooling,
                 dropout_rate=cfg.dropout_rate, train=train, dtype=dtype,
                 aspp_separable=cfg.aspp_separable, separable_depthwise_bn=cfg.separable_depthwise_bn,
                 aspp_post_conv=cfg.aspp_post_conv, conv_impl=_conv_impl(cfg))
  rates = aspp.scale_rates(cfg.aspp_rates, output_stride, reference)
  if cfg.decoder:
    return aspp.DeepLabV3PlusHead(num_classes, rates, norm, **options,
                                  decoder_low_level_features=cfg.decoder_low_level_features,
                                  decoder_convs=cfg.decoder_convs,
                                  decoder_separable=cfg.decoder_separable,
                                  upsample_align_corners=cfg.upsample_align_corners)
  return aspp.DeepLabV3Head(num_classes, rates, norm, **options)


def build_model(config: ml_collections.ConfigDict, *, train: bool, output_stride: int | None = None,
                axis_name: str | None = None, bn_momentum: float | None = None) -> DeepLab:
  """The DeepLab of a whole config (config.model, config.data.num_classes) at `output_stride`.

  Args:
    config: a run config (configs/base.py's tree).
    train: a training model (batch statistics, dropout) or an inference one.
    output_stride: default config.model.output_stride. The weights do not depend on it, so a model
      trained at OS 16 evaluates at OS 8 by building it again with output_stride=8.
    axis_name: the pmap axis BatchNorm reduces over, under the pmap front.
    bn_momentum: if given, every BatchNorm's moving-average momentum instead of the config's and the
      backbones' own (deeplab_jax.train.precise_bn uses 0).
  """
  cfg, num_classes = config.model, config.data.num_classes
  output_stride = output_stride or cfg.output_stride
  dtype = DTYPES[cfg.dtype]
  norm = layers.make_norm(train, cfg.bn_momentum, cfg.bn_epsilon, dtype,
                          frozen=not cfg.fine_tune_batch_norm, axis_name=axis_name,
                          fixed_momentum=bn_momentum)
  entry = backbones.get(cfg.backbone)
  backbone = backbones.build(cfg, backbones.Context(norm, output_stride, dtype, _conv_impl(cfg),
                                                    _remat(cfg)))
  head = build_head(cfg, num_classes, norm, output_stride, train, dtype)
  aux_head = None
  if cfg.aux_head:
    if entry.aux is None:
      with_aux = [name for name, b in backbones.BACKBONES.items() if b.aux]
      raise UserError(f'model.aux_head sits on ResNet stage 3 or on MobileNetV3-Large\'s stride-8 '
                      f'features; backbone {cfg.backbone!r} has neither. Set '
                      f'model.aux_head=False or use one of {", ".join(with_aux)}.')
    aux_head = aspp.FCNHead(num_classes, norm, cfg.aux_dropout_rate, train, dtype, _conv_impl(cfg))
  if any(not 0 < s <= 4 for s in cfg.msc_scales):
    raise UserError(f'model.msc_scales must be in (0, 4], got {tuple(cfg.msc_scales)}.')
  if cfg.msc_fuse_at not in MSC_FUSE_AT:
    raise UserError(f'model.msc_fuse_at={cfg.msc_fuse_at!r}; expected one of {", ".join(MSC_FUSE_AT)}.')
  upsample_logits = not train or config.train.upsample_logits
  return DeepLab(backbone, head, entry.feature_keys, aux_head, tuple(cfg.msc_scales),
                 cfg.upsample_align_corners, cfg.msc_fuse_at, upsample_logits)


def variable_shapes(config: ml_collections.ConfigDict, *, train: bool = False) -> dict:
  """The model's variables ({'params', 'batch_stats'}; {} batch_stats without BatchNorm) as
  ShapeDtypeStructs, computing nothing."""
  model = build_model(config, train=train)
  images = jax.ShapeDtypeStruct((1, SHAPE_INFERENCE_SIZE, SHAPE_INFERENCE_SIZE, 3), np.float32)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)
  return {'params': shapes['params'], 'batch_stats': shapes.get('batch_stats', {})}
