"""Image sizes in configs: a side (a square) or (height, width)."""
from deeplab_jax.errors import UserError


def height_width(size, field: str) -> tuple[int, int]:
  """(height, width) of a config size: an int side (square) or a (height, width) pair of ints > 0.

  Raises:
    UserError: naming `field` (e.g. 'data.eval_size') when size is neither.
  """
  pair = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else ()
  if len(pair) != 2 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in pair):
    raise UserError(f'{field} is {size!r}; expected a side (e.g. 513) or (height, width), e.g. '
                    '(1025, 2049).')
  return pair
