"""Config fields that change the function but no variable's shape, compared with the peer's config.

The shapes decide whether the weights load; these fields decide whether the loaded model computes the
peer's function. A difference is a note, not a refusal: fine for fine-tuning, not for reproducing the
peer's numbers. The peer's values are those of its config in configs/pretrained/ (kinds.Kind.reference).
"""
import ml_collections

from deeplab_jax.convert import kinds

# What a whole segmentation model computes depends on these besides its variables.
MODEL_FIELDS = ('output_stride', 'aspp_rates', 'resnet.dilation_style', 'multi_grid', 'resnet.stem',
                'resnet.layout', 'upsample_align_corners', 'separable_depthwise_bn')
# An ImageNet backbone fixes only its stem and unit layout (where a stage strides: the same variable
# shapes either way): its stride, dilation and head are the config's to choose.
BACKBONE_FIELDS = ('resnet.stem', 'resnet.layout')


def _value(model_cfg: ml_collections.ConfigDict, field: str):
  value = model_cfg
  for part in field.split('.'):
    value = value[part]
  return tuple(value) if isinstance(value, (list, tuple)) else value


def _applies(field: str, model_cfg: ml_collections.ConfigDict,
             peer_model: ml_collections.ConfigDict) -> bool:
  """resnet.* configure ResNets only; separable_depthwise_bn only a peer with separable convs."""
  if field.startswith('resnet.'):
    return model_cfg.backbone.startswith('resnet')
  if field == 'separable_depthwise_bn':
    return bool(peer_model.aspp_separable or (peer_model.decoder and peer_model.decoder_separable))
  return True


def architecture_notes(model_cfg: ml_collections.ConfigDict, kind: str) -> list[str]:
  """The fields of model_cfg that differ from the `kind` peer's config, one note each.

  Args:
    model_cfg: the config's model, whose backbone the kind holds (kinds.entries_for checks it).
    kind: a name of kinds.KINDS.

  Returns:
    'model.FIELD is VALUE; the KIND peer computes with PEER_VALUE' per differing field.
  """
  entry = kinds.get(kind)
  peer_model = entry.reference(model_cfg.backbone).model
  notes = []
  for field in BACKBONE_FIELDS if entry.backbone_only else MODEL_FIELDS:
    if not _applies(field, model_cfg, peer_model):
      continue
    value, peer = _value(model_cfg, field), _value(peer_model, field)
    if value != peer:
      notes.append(f'model.{field} is {value!r}; the {kind} peer computes with {peer!r}')
  return notes
