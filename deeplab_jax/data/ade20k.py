"""Reader of ADE20K SceneParsing (ADEChallengeData2016); stored 0 ("other") becomes ignore and 1..150
become classes 0..149 in the pipeline.

    ROOT/images/<split>/ADE_<split>_<n>.jpg          (split: training, validation)
    ROOT/annotations/<split>/ADE_<split>_<n>.png     (8-bit, 0..150)
"""
import os

from etils import epath

from deeplab_jax.data.split import Split, check_exist
from deeplab_jax.errors import UserError


def read_split(root: str, split: str) -> Split:
  """Every images/<split>/*.jpg with its annotations/<split>/<stem>.png."""
  image_dir = os.path.join(root, 'images', split)
  if not epath.Path(image_dir).is_dir():
    raise UserError(f'ADE20K folder {image_dir} not found. Expected ADEChallengeData2016 at '
                    '--config.data.root with images/{training,validation}/*.jpg and '
                    'annotations/{training,validation}/*.png; splits are named training and validation.')
  images = sorted(str(p) for p in epath.Path(image_dir).glob('*.jpg'))
  if not images:
    raise UserError(f'No .jpg images in {image_dir}.')
  labels = [os.path.join(root, 'annotations', split, os.path.basename(p)[:-4] + '.png') for p in images]
  return check_exist(Split(split, tuple(images), tuple(labels), 'ade20k'), image_dir,
                     'Each image needs annotations/<split>/<same name>.png.')
