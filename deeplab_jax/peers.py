"""The PyTorch peers' helpers (`tv_shim`, from ../shared/peers beside the checkout) on sys.path.

Used by the peer parity tests, the converter's tests and benchmark_torch; the peers themselves are
installed into the venv by `bash ../shared/peers/setup.sh VENV`.
"""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CANDIDATES = (os.path.join(_ROOT, '..', 'shared', 'peers'), '/work/shared/peers')


def add_to_path() -> str | None:
  """Puts the first existing peers folder first on sys.path; returns it, or None if there is none."""
  for folder in _CANDIDATES:
    if os.path.isdir(folder):
      if folder not in sys.path:
        sys.path.insert(0, folder)
      return folder
  return None
