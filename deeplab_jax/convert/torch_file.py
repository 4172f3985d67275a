"""Reading a PyTorch state_dict file (.pth/.pt/.bin or .safetensors) into numpy arrays.

Nothing is downloaded from a hub: the file (a local path or gs://, opened through etils.epath) is read
with `torch.load(map_location='cpu', weights_only=True)` or `safetensors.torch.load`.
"""
from etils import epath
import numpy as np

from deeplab_jax.errors import UserError


def _read(path: str):
  """The object the file holds; UserError when torch is missing or the file is not a checkpoint."""
  try:
    if path.endswith('.safetensors'):
      from safetensors.torch import load
      return load(epath.Path(path).read_bytes())  # CPU tensors
    import torch
    with epath.Path(path).open('rb') as f:
      return torch.load(f, map_location='cpu', weights_only=True)
  except ImportError as e:
    raise UserError(f'Reading {path} needs PyTorch (and safetensors for .safetensors files): {e}. '
                    'Install them (../shared/peers/setup.sh) to convert.') from e
  except Exception as e:  # torch and safetensors raise many types for damaged or foreign files
    raise UserError(f'Cannot read {path} as a PyTorch state_dict ({type(e).__name__}: '
                    f'{str(e)[:300]}). Expected a .pth saved with torch.save(model.state_dict()) or '
                    'a .safetensors file.') from e


def load_state_dict(path: str) -> dict[str, np.ndarray]:
  """The float32 numpy tensors of a .pth/.pt/.bin state_dict or a .safetensors file.

  A training checkpoint holding the state_dict under 'model' or 'state_dict' (torchvision's reference
  scripts, Lightning) is unwrapped.
  """
  if not epath.Path(path).is_file():
    raise UserError(f'--source {path} is not a file. Pass a local PyTorch checkpoint (.pth or '
                    '.safetensors); nothing is downloaded here.')
  tensors = _read(path)
  for wrapper in ('model', 'state_dict'):
    if isinstance(tensors, dict) and isinstance(tensors.get(wrapper), dict):
      tensors = tensors[wrapper]
  if not isinstance(tensors, dict) or not tensors:
    raise UserError(f'{path} holds no state_dict (a dict of tensor names to tensors).')
  return {k: v.detach().float().numpy() for k, v in tensors.items() if hasattr(v, 'numpy')}
