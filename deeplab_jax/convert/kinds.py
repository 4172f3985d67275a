"""The --kinds: the PyTorch model a state_dict comes from, and what converting it takes.

  torchvision_deeplabv3: torchvision deeplabv3_resnet50 / deeplabv3_resnet101 /
    deeplabv3_mobilenet_v3_large (aux head optional); the config's model.backbone says which.
  torchvision_resnet: torchvision ImageNet resnet50 / resnet101, as the backbone of any ResNet config
    (the classifier `fc` is ignored; the head stays at its initialisation).
  torchvision_mobilenet_v3: torchvision ImageNet mobilenet_v3_large, as the backbone of any
    mobilenetv3_large config (the `classifier` is ignored; the head stays at its initialisation).
  smp_deeplabv3plus: segmentation_models_pytorch DeepLabV3Plus with a ResNet encoder.

Which backbones a kind holds is the backbone registry's (models/backbones.py, `converters`).
"""
import dataclasses
from typing import Callable

import ml_collections

from deeplab_jax.convert import smp, torchvision
from deeplab_jax.convert.entries import Entry
from deeplab_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Kind:
  """A --kind of the registry.

  Attributes:
    entries: model config -> the correspondences of its modules with the checkpoint's.
    reference: model.backbone -> the config computing the peer's function (configs/pretrained/).
    backbone_only: the checkpoint holds a backbone alone; the rest of the model stays at its
      initialisation.
    ignored_keys: PyTorch keys holding no weights a deeplab_jax model has (an ImageNet classifier).
  """
  entries: Callable[[ml_collections.ConfigDict], list[Entry]]
  reference: Callable[[str], ml_collections.ConfigDict]
  backbone_only: bool = False
  ignored_keys: tuple[str, ...] = ()


KINDS = {
    'torchvision_deeplabv3': Kind(torchvision.deeplabv3_entries, torchvision.reference_config),
    'torchvision_resnet': Kind(torchvision.imagenet_resnet_entries, torchvision.reference_config,
                               backbone_only=True, ignored_keys=torchvision.RESNET_CLASSIFIER),
    'torchvision_mobilenet_v3': Kind(torchvision.imagenet_mobilenet_v3_entries,
                                     torchvision.reference_config, backbone_only=True,
                                     ignored_keys=torchvision.MOBILENET_V3_CLASSIFIER),
    'smp_deeplabv3plus': Kind(smp.deeplabv3plus_entries, smp.reference_config),
}


def get(name: str) -> Kind:
  """The registry entry of --kind `name`; UserError listing the known ones otherwise."""
  if name not in KINDS:
    raise UserError(f'Unknown --kind {name!r}; known: {", ".join(KINDS)}.')
  return KINDS[name]


def backbones_held(name: str) -> list[str]:
  """The model.backbone names whose registry entry lists `name` among its converters."""
  from deeplab_jax.models.backbones import BACKBONES  # builds on flax: not needed for --help
  return [backbone for backbone, entry in BACKBONES.items() if name in entry.converters]


def entries_for(name: str, model_cfg: ml_collections.ConfigDict) -> list[Entry]:
  """The correspondences of a `name` checkpoint with the model of model_cfg."""
  kind, held = get(name), backbones_held(name)
  if model_cfg.backbone not in held:
    raise UserError(f'--kind={name} holds a {" or ".join(held)} backbone; the config\'s '
                    f'model.backbone is {model_cfg.backbone!r}.')
  return kind.entries(model_cfg)


def expected_at_init(name: str, path: str) -> bool:
  """Variables a kind never provides: the head and aux head of a backbone-only checkpoint."""
  return get(name).backbone_only and not path.startswith('backbone/')
