"""Reading a TF1 checkpoint (the official DeepLab model zoo's), local or gs://, into numpy arrays.

--source may be the checkpoint prefix (`.../model.ckpt`), its `.index` or a `.data-*` file, or a folder
holding one checkpoint: an extracted model-zoo tarball such as deeplabv3_pascal_train_aug/ (searched
recursively). Nothing is downloaded from a hub; the files are found through etils.epath and read by
TensorFlow's checkpoint reader.
"""
import os

from etils import epath
import numpy as np

from deeplab_jax.errors import UserError


def checkpoint_prefix(path: str) -> str:
  """The checkpoint prefix that `path` names (see the module docstring); UserError if none."""
  if epath.Path(path).is_dir():
    indexes = sorted(str(folder / name) for folder, _, names in epath.Path(path).walk()
                     for name in names if name.endswith('.index'))
    if len(indexes) != 1:
      found = ', '.join(indexes) if indexes else 'none'
      raise UserError(f'--source folder {path} must hold exactly one TF1 checkpoint (NAME.index + '
                      f'NAME.data-*); found {found}. Pass the checkpoint prefix instead, e.g. '
                      f'{os.path.join(path, "model.ckpt")}.')
    return indexes[0][:-len('.index')]
  prefix = path
  if path.endswith('.index'):
    prefix = path[:-len('.index')]
  elif '.data-' in os.path.basename(path):
    prefix = path[:path.rindex('.data-')]
  folder, name = epath.Path(prefix).parent, epath.Path(prefix).name
  if not (folder / (name + '.index')).is_file() or not any(folder.glob(name + '.data-*')):
    raise UserError(f'--source {path} is not a TF1 checkpoint: expected {prefix}.index and '
                    f'{prefix}.data-00000-of-00001 (an extracted model-zoo tarball has both as '
                    'model.ckpt.*); nothing is downloaded here.')
  return prefix


def load_checkpoint(path: str) -> dict[str, np.ndarray]:
  """Every float variable of the TF1 checkpoint at `path`, by its variable name, as float32.

  Non-float variables (global_step) are left out.
  """
  prefix = checkpoint_prefix(path)
  try:
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
  except ImportError as e:
    raise UserError(f'Reading {prefix} needs TensorFlow (tensorflow-cpu, in requirements.txt): {e}') from e
  except Exception as e:  # the reader raises DataLossError, NotFoundError, ... for damaged files
    raise UserError(f'Cannot read {prefix} as a TF1 checkpoint ({type(e).__name__}: '
                    f'{str(e)[:300]}).') from e
  dtypes = reader.get_variable_to_dtype_map()
  return {name: np.asarray(reader.get_tensor(name), np.float32)
          for name, dtype in sorted(dtypes.items()) if dtype.is_floating}
