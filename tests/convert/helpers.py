"""What the converter's tests share: random peers, their state_dicts, and logits compared with ours.

Importing this module skips the importing test module without torch / torchvision (tv_shim).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.pretrained import torchvision_deeplabv3
from deeplab_jax import peers
from deeplab_jax.convert.match import convert_variables
from deeplab_jax.models.deeplab import build_model

peers.add_to_path()
torch = pytest.importorskip('torch')
pytest.importorskip('tv_shim')
import tv_shim  # noqa: E402,F401  (makes torchvision importable in this environment)

from torchvision.models import resnet as tv_resnet  # noqa: E402
from torchvision.models._utils import IntermediateLayerGetter  # noqa: E402

torch.set_num_threads(2)
TOLERANCE = 1e-4  # of the largest logit magnitude


def randomise(module: 'torch.nn.Module', seed: int) -> 'torch.nn.Module':
  """module in eval mode with every weight random, BatchNorm affine and running statistics too."""
  torch.manual_seed(seed)
  for m in module.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.normal_(0.0, 0.1)
      m.running_mean.normal_(0.0, 0.1)
      m.running_var.uniform_(0.5, 1.5)
    elif isinstance(m, torch.nn.Conv2d) and m.bias is not None:
      m.bias.data.normal_(0.0, 0.1)
  return module.eval()


def numpy_state(module) -> dict:
  return {k: v.detach().numpy() for k, v in module.state_dict().items()}


def nhwc(x: 'torch.Tensor') -> jax.Array:
  return jnp.asarray(x.detach().numpy().transpose(0, 2, 3, 1))


def relative_error(ours: jax.Array, theirs: 'torch.Tensor') -> float:
  """max |ours - theirs| / max |theirs|, theirs NCHW."""
  theirs = theirs.detach().numpy().transpose(0, 2, 3, 1)
  return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


def logits_errors(peer, config, kind, size, seed=0, aux_key=None) -> dict[str, float]:
  """Relative errors of deeplab_jax's logits (and aux logits) against the peer's on a random image."""
  variables, _ = convert_variables(config, numpy_state(peer), kind, log=lambda _: None)
  torch.manual_seed(seed + 1)
  image = torch.randn(1, 3, *size)
  with torch.no_grad():
    theirs = peer(image)
  theirs = theirs if isinstance(theirs, dict) else {'out': theirs}
  ours = jax.jit(build_model(config, train=False).apply)(
      variables, nhwc(image))
  errors = {'logits': relative_error(ours['logits'], theirs['out'])}
  if aux_key:
    errors['aux'] = relative_error(ours['aux'], theirs[aux_key])
  print(f'{kind} {config.model.backbone} {size}: {errors}')
  return errors


def small_peer(num_classes: int, seed: int = 11):
  """torchvision's DeepLabV3 on a ResNet with one bottleneck per stage, dilated as deeplabv3_resnet50."""
  from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
  from torchvision.models.segmentation.fcn import FCNHead
  backbone = tv_resnet.ResNet(tv_resnet.Bottleneck, [1, 1, 1, 1],
                              replace_stride_with_dilation=[False, True, True])
  backbone = IntermediateLayerGetter(backbone, {'layer4': 'out', 'layer3': 'aux'})
  model = DeepLabV3(backbone, DeepLabHead(2048, num_classes), FCNHead(1024, num_classes))
  return randomise(model, seed)


def small_config(num_classes: int):
  config = torchvision_deeplabv3.get_config('resnet50')
  config.model.resnet.blocks = (1, 1, 1, 1)
  config.data.num_classes = num_classes
  return config
