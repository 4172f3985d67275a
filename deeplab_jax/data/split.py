"""A split of a dataset: parallel image and label paths, as every reader returns and the pipeline reads."""
import dataclasses

from etils import epath

from deeplab_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Split:
  """Parallel lists of image and label paths of one split.

  label_map names the table (deeplab_jax.data.labels) that turns stored label values into classes.
  """
  name: str
  image_paths: tuple[str, ...]
  label_paths: tuple[str, ...]
  label_map: str = 'identity'

  def __len__(self) -> int:
    return len(self.image_paths)


def check_exist(split: Split, source: str, help_text: str = '') -> Split:
  """split unchanged, or a UserError naming how many files `source` lists are missing and the first."""
  for kind, paths in (('image', split.image_paths), ('label', split.label_paths)):
    missing = [p for p in paths if not epath.Path(p).is_file()]
    if missing:
      raise UserError(f'{len(missing)} {kind} file(s) listed in {source} are missing, first: '
                      f'{missing[0]}. {help_text}'.rstrip())
  return split
