"""Reader of Cityscapes fine annotations; labelIds become the 19 train ids in the pipeline.

    ROOT/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png   (8-bit labelIds 0..33)
"""
import os

from etils import epath

from deeplab_jax.data.split import Split, check_exist
from deeplab_jax.errors import UserError

_IMAGE_SUFFIX = '_leftImg8bit.png'
_LABEL_SUFFIX = '_gtFine_labelIds.png'


def read_split(root: str, split: str) -> Split:
  """Every leftImg8bit image of split ('train', 'val') with its gtFine labelIds PNG."""
  image_dir = os.path.join(root, 'leftImg8bit', split)
  if not epath.Path(image_dir).is_dir():
    raise UserError(f'Cityscapes folder {image_dir} not found. Expected ROOT/leftImg8bit/<split>/<city>/'
                    f'*{_IMAGE_SUFFIX} and ROOT/gtFine/<split>/<city>/*{_LABEL_SUFFIX} with ROOT = '
                    '--config.data.root.')
  images = sorted(str(p) for p in epath.Path(image_dir).glob('*/*' + _IMAGE_SUFFIX))
  if not images:
    raise UserError(f'No *{_IMAGE_SUFFIX} images in the city folders of {image_dir}.')
  labels = [os.path.join(root, 'gtFine', split, os.path.basename(os.path.dirname(p)),
                         os.path.basename(p)[:-len(_IMAGE_SUFFIX)] + _LABEL_SUFFIX) for p in images]
  return check_exist(Split(split, tuple(images), tuple(labels), 'cityscapes'), image_dir,
                     'Each image needs its gtFine labelIds PNG (the fine annotations package).')
