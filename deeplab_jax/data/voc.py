"""Reader of the PASCAL VOC segmentation layout, used for VOC itself and for the synthetic dataset.

    ROOT/JPEGImages/<id>.jpg
    ROOT/<label_dir>/<id>.png              (class index per pixel; palette or greyscale PNG)
    ROOT/ImageSets/Segmentation/<split>.txt  (one <id> per line)
"""
import dataclasses
import os

from deeplab_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Split:
  """Parallel lists of image and label paths of one split."""
  name: str
  image_paths: tuple[str, ...]
  label_paths: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.image_paths)


def _layout_help(root: str, label_dir: str) -> str:
  return (f'Expected the PASCAL VOC layout under {root}: JPEGImages/<id>.jpg, {label_dir}/<id>.png and '
          'ImageSets/Segmentation/<split>.txt (set --config.data.root to the folder that holds them).')


def read_split(root: str, split: str, label_dir: str = 'SegmentationClass') -> Split:
  """The (image, label) paths listed in ImageSets/Segmentation/<split>.txt under root.

  Raises:
    UserError: naming the missing folder, split file or first missing image/label.
  """
  if not os.path.isdir(root):
    raise UserError(f'Dataset folder {root} does not exist. ' + _layout_help(root, label_dir))
  list_file = os.path.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')
  if not os.path.isfile(list_file):
    raise UserError(f'Split file {list_file} not found. ' + _layout_help(root, label_dir))
  with open(list_file) as f:
    ids = [line.split()[0] for line in f if line.strip()]
  if not ids:
    raise UserError(f'Split file {list_file} lists no images.')
  images = tuple(os.path.join(root, 'JPEGImages', i + '.jpg') for i in ids)
  labels = tuple(os.path.join(root, label_dir, i + '.png') for i in ids)
  for kind, paths in (('image', images), ('label', labels)):
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise UserError(f'{len(missing)} {kind} file(s) listed in {list_file} are missing, first: '
                      f'{missing[0]}. ' + _layout_help(root, label_dir))
  return Split(split, images, labels)
