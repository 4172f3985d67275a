"""The PyTorch peers' helpers (`tv_shim`) on sys.path.

The folder is $DEEPLAB_JAX_PEERS when set, else `../shared/peers` beside the repository. Used by the
peer parity tests, the converter's tests and the PyTorch benchmark; the peers themselves are installed
into the venv by `bash ../shared/peers/setup.sh VENV`.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def folder() -> str:
  """Where the peers' helpers are looked for."""
  return os.environ.get('DEEPLAB_JAX_PEERS') or os.path.join(REPO, '..', 'shared', 'peers')


def add_to_path() -> str | None:
  """Puts the peers folder first on sys.path; returns it, or None if it does not exist."""
  path = os.path.abspath(folder())
  if not os.path.isdir(path):
    return None
  if path not in sys.path:
    sys.path.insert(0, path)
  return path


def import_torch():
  """torch, imported with its OpenMP threads sleeping (not spinning) between parallel regions.

  In a benchmark that alternates torch's steps with ours, libgomp's spinning threads take CPU from our
  step that follows (DeepLabV3-ResNet-50 train step at 208², 2 cores: 2.42 s after a torch step against
  2.20 s after one of ours). With OMP_WAIT_POLICY=PASSIVE the two are equal, and torch's own step is as
  fast (2.118 s against 2.111 s). A policy already set in the environment is kept; it only takes effect
  if torch is not imported yet.
  """
  os.environ.setdefault('OMP_WAIT_POLICY', 'PASSIVE')
  import torch
  return torch
