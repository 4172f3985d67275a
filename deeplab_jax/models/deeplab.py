"""Assembles a DeepLab model (backbone + head + upsampling) from the `model` block of a config."""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax.errors import UserError
from deeplab_jax.models import aspp, layers, resnet


class DeepLab(nn.Module):
  """backbone(images) -> head(features) -> logits bilinearly upsampled to the input size.

  A DeepLab instance is either a training model (batch statistics, dropout) or an inference one (moving
  statistics, no dropout): `build_model(train=...)` decides, and both apply the same variables.
  Returns a dict: 'logits' [B, H, W, num_classes] in float32 (heads with extra outputs, such as an
  auxiliary classifier, add keys).
  """
  backbone: nn.Module
  head: nn.Module

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    """images [B, H, W, 3] normalised -> {'logits': [B, H, W, num_classes]}."""
    features = self.backbone(images)
    logits = self.head(features)
    logits = layers.resize_bilinear(logits.astype(jnp.float32), images.shape[1:3])
    return {'logits': logits}


def _dtype(name: str) -> Any:
  return {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}[name]


def build_backbone(cfg: ml_collections.ConfigDict, norm: layers.ModuleDef, output_stride: int,
                   dtype: Any) -> nn.Module:
  """The backbone named by cfg.backbone."""
  if cfg.backbone in ('resnet50', 'resnet101'):
    blocks = tuple(cfg.resnet.blocks) or resnet.STAGE_BLOCKS[int(cfg.backbone[6:])]
    if cfg.multi_grid and len(cfg.multi_grid) != blocks[-1]:
      raise UserError(f'model.multi_grid {tuple(cfg.multi_grid)} needs one rate per unit of the last '
                      f'stage, which has {blocks[-1]} (model.resnet.blocks {blocks}).')
    if output_stride not in (8, 16, 32):
      raise UserError(f'output stride must be 8, 16 or 32, got {output_stride}.')
    return resnet.ResNet(blocks, norm, output_stride, tuple(cfg.multi_grid) or None,
                         cfg.resnet.width, cfg.resnet.stem, cfg.resnet.dilation_style, dtype)
  raise UserError(f'Unknown model.backbone {cfg.backbone!r}; known: resnet50, resnet101.')


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
  if model_cfg.head != 'aspp':
    raise UserError(f"Unknown model.head {model_cfg.head!r}; known: 'aspp'.")
  rates = aspp.scale_rates(model_cfg.aspp_rates, output_stride)
  head = aspp.DeepLabV3Head(num_classes, rates, norm, model_cfg.aspp_features,
                            model_cfg.image_pooling, model_cfg.dropout_rate, train, dtype)
  return DeepLab(backbone, head)
