"""The input normalisation a run was trained with, in one place: the tf.data pipelines, predict, export,
the CRF's colours and the eval pictures all read it here (no TensorFlow needed).

'imagenet': (x - data.mean) / data.std, torchvision's ImageNet statistics by default.
'inception': [0, 255] -> [-1, 1], (x - 127.5) / 127.5, as the official DeepLab feeds Xception and MobileNet.
"""
import numpy as np

from deeplab_jax.errors import UserError

NORMALIZATIONS = ('imagenet', 'inception')
_INCEPTION = ((127.5, 127.5, 127.5), (127.5, 127.5, 127.5))


def mean_std(data) -> tuple[tuple[float, ...], tuple[float, ...]]:
  """(mean, std) per RGB channel for config.data (its normalization, mean and std fields)."""
  if data.normalization == 'imagenet':
    return tuple(float(m) for m in data.mean), tuple(float(s) for s in data.std)
  if data.normalization == 'inception':
    return _INCEPTION
  raise UserError(f'data.normalization is {data.normalization!r}; expected one of {NORMALIZATIONS}.')


def normalize(image: np.ndarray, data) -> np.ndarray:
  """float32 (image - mean) / std of a uint8 (or float) RGB array [..., 3], by config.data."""
  mean, std = mean_std(data)
  return (np.asarray(image, np.float32) - np.float32(mean)) / np.float32(std)


def record(data) -> dict:
  """{'normalization', 'mean', 'std'}: what an exported model's input expects, for its metadata."""
  mean, std = mean_std(data)
  return {'normalization': data.normalization, 'mean': list(mean), 'std': list(std)}
