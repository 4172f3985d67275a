"""User paths, local or gs://: every module reads and writes them through etils.epath.

Two things epath leaves to its callers: making a local path absolute (orbax wants absolute folders,
and os.path.abspath would turn gs://bucket/run into CWD/gs:/bucket/run) and the errors a read can raise
(OSError locally; TensorFlow's errors for gs://, which epath serves through tf.io.gfile).
"""
import os
import sys

from etils import epath


def is_remote(path: epath.PathLike) -> bool:
  """Whether path is a URI (gs://, s3://, ...) rather than a local path."""
  return '://' in os.fspath(path)


def absolute(path: epath.PathLike) -> str:
  """A local path made absolute, a URI without a trailing '/'; both normalised."""
  return str(epath.Path(path)) if is_remote(path) else os.path.abspath(path)


def io_errors() -> tuple[type, ...]:
  """OSError, and TensorFlow's errors if it is loaded (tf.io.gfile serves epath's gs:// paths)."""
  tf = sys.modules.get('tensorflow')
  return (OSError,) + ((tf.errors.OpError,) if tf is not None and hasattr(tf, 'errors') else ())
