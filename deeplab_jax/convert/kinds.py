"""The --kinds: the model a checkpoint comes from, and what converting it takes.

  torchvision_deeplabv3: torchvision deeplabv3_resnet50 / deeplabv3_resnet101 /
    deeplabv3_mobilenet_v3_large (aux head optional); the config's model.backbone says which.
  torchvision_resnet: torchvision ImageNet resnet50 / resnet101, as the backbone of any ResNet config
    (the classifier `fc` is ignored; the head stays at its initialisation).
  torchvision_mobilenet_v3: torchvision ImageNet mobilenet_v3_large, as the backbone of any
    mobilenetv3_large config (the `classifier` is ignored; the head stays at its initialisation).
  smp_deeplabv3plus: segmentation_models_pytorch DeepLabV3Plus with a ResNet encoder.
  torchvision_mobilenet_v2: torchvision ImageNet mobilenet_v2, as the backbone of any mobilenetv2 config
    (its 1280-channel last conv and `classifier` are ignored).
  torchvision_vgg16: torchvision ImageNet vgg16 (conv1_1 .. conv5_3), as the backbone of any vgg16
    config (fc6-fc8 ignored: v1's fc6/fc7 are new 1024-channel convs).
  timm_xception65: timm's ImageNet xception65 (.tf_in1k, a port of the official Xception-65, or
    .ra3_in1k), as the backbone of any xception65 config (head.fc ignored).
  tf_deeplab: an official TF1 DeepLab checkpoint of the model zoo (xception_65, resnet_v1_{50,101}_beta,
    mobilenet_v2 with ASPP or without, decoder and logits): the whole model
    (configs/pretrained/tf_deeplab.py).
  tf_deeplab_imagenet: an official TF1 ImageNet backbone (the zoo's xception_65, resnet_v1_*_beta;
    slim's MobilenetV2), as the backbone of any config with that backbone (classifier ignored).

Which backbones a kind holds is the backbone registry's (models/backbones.py, `converters`).
"""
import dataclasses
from typing import Callable

import ml_collections

from deeplab_jax.convert import smp, tf1, tf_deeplab, timm, torch_file, torchvision
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
    ignored_keys: keys holding no weights a deeplab_jax model has (an ImageNet classifier).
    ignored_prefixes: the same, as name prefixes (a TF1 classifier scope).
    load: --source -> {name: float32 array} in the source's layout.
    unused_first_class: the checkpoint's logits may have one class more than data.num_classes, the
      first, never trained (official ADE20K's 'other', label 0 ignored): it is dropped.
  """
  entries: Callable[[ml_collections.ConfigDict], list[Entry]]
  reference: Callable[[str], ml_collections.ConfigDict]
  backbone_only: bool = False
  ignored_keys: tuple[str, ...] = ()
  ignored_prefixes: tuple[str, ...] = ()
  load: Callable[[str], dict] = torch_file.load_state_dict
  unused_first_class: bool = False

  def ignores(self, key: str) -> bool:
    return key in self.ignored_keys or key.startswith(self.ignored_prefixes)


KINDS = {
    'torchvision_deeplabv3': Kind(torchvision.deeplabv3_entries, torchvision.reference_config),
    'torchvision_resnet': Kind(torchvision.imagenet_resnet_entries, torchvision.reference_config,
                               backbone_only=True, ignored_keys=torchvision.RESNET_CLASSIFIER),
    'torchvision_mobilenet_v3': Kind(torchvision.imagenet_mobilenet_v3_entries,
                                     torchvision.reference_config, backbone_only=True,
                                     ignored_keys=torchvision.MOBILENET_V3_CLASSIFIER),
    'smp_deeplabv3plus': Kind(smp.deeplabv3plus_entries, smp.reference_config),
    'torchvision_mobilenet_v2': Kind(torchvision.imagenet_mobilenet_v2_entries,
                                     tf_deeplab.reference_config, backbone_only=True,
                                     ignored_keys=torchvision.MOBILENET_V2_CLASSIFIER),
    'torchvision_vgg16': Kind(torchvision.imagenet_vgg16_entries, torchvision.vgg16_reference_config,
                              backbone_only=True, ignored_keys=torchvision.VGG16_CLASSIFIER),
    'timm_xception65': Kind(timm.xception65_entries, tf_deeplab.reference_config, backbone_only=True,
                            ignored_keys=timm.XCEPTION_CLASSIFIER),
    'tf_deeplab': Kind(tf_deeplab.deeplab_entries, tf_deeplab.reference_config, load=tf1.load_checkpoint,
                       unused_first_class=True),
    'tf_deeplab_imagenet': Kind(tf_deeplab.imagenet_entries, tf_deeplab.reference_config,
                                backbone_only=True, load=tf1.load_checkpoint,
                                ignored_prefixes=tf_deeplab.IMAGENET_CLASSIFIERS),
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
