"""Readers of the PASCAL VOC segmentation layout (VOC itself and the synthetic dataset) and of the
VOC 2012 + SBD `train_aug` split.

    ROOT/JPEGImages/<id>.jpg
    ROOT/<label_dir>/<id>.png              (class index per pixel; palette or greyscale PNG)
    ROOT/ImageSets/Segmentation/<split>.txt  (one <id> per line)
    SBD/{train,val}.txt, SBD/cls/<id>.mat    (benchmark_RELEASE/dataset: GTcls.Segmentation)
"""
import os

from etils import epath

from deeplab_jax.data.split import Split, check_exist
from deeplab_jax.errors import UserError


def _layout_help(root: str, label_dir: str) -> str:
  return (f'Expected the PASCAL VOC layout under {root}: JPEGImages/<id>.jpg, {label_dir}/<id>.png and '
          'ImageSets/Segmentation/<split>.txt (set --config.data.root to the folder that holds them).')


def read_ids(list_file: str, what: str) -> list[str]:
  """The first word of each non-empty line of list_file.

  Raises:
    UserError: if the file is missing or lists nothing; `what` says what the file should be.
  """
  if not epath.Path(list_file).is_file():
    raise UserError(f'Split file {list_file} not found. {what}')
  ids = [line.split()[0] for line in epath.Path(list_file).read_text().splitlines() if line.strip()]
  if not ids:
    raise UserError(f'Split file {list_file} lists no images.')
  return ids


def read_split(root: str, split: str, label_dir: str = 'SegmentationClass') -> Split:
  """The (image, label) paths listed in ImageSets/Segmentation/<split>.txt under root.

  Raises:
    UserError: naming the missing folder, split file or first missing image/label.
  """
  if not epath.Path(root).is_dir():
    raise UserError(f'Dataset folder {root} does not exist. ' + _layout_help(root, label_dir))
  list_file = os.path.join(root, 'ImageSets', 'Segmentation', f'{split}.txt')
  ids = read_ids(list_file, _layout_help(root, label_dir))
  images = tuple(os.path.join(root, 'JPEGImages', i + '.jpg') for i in ids)
  labels = tuple(os.path.join(root, label_dir, i + '.png') for i in ids)
  return check_exist(Split(split, images, labels), list_file, _layout_help(root, label_dir))


def _sbd_help(sbd_root: str) -> str:
  return (f'train_aug is VOC 2012 train + SBD train/val; expected SBD (benchmark_RELEASE/dataset) at '
          f'{sbd_root} with train.txt, val.txt and cls/<id>.mat (set --config.data.sbd_root), or a '
          'ready ImageSets/Segmentation/train_aug.txt with its labels in data.label_dir.')


def train_aug_ids(voc_root: str, sbd_root: str) -> tuple[list[str], set[str]]:
  """(sorted train_aug ids, the VOC train ids among them): VOC train + SBD train + SBD val - VOC val."""
  if not epath.Path(voc_root).is_dir():
    raise UserError(f'Dataset folder {voc_root} does not exist. '
                    + _layout_help(voc_root, 'SegmentationClass'))
  voc_lists = os.path.join(voc_root, 'ImageSets', 'Segmentation')
  voc_train = read_ids(os.path.join(voc_lists, 'train.txt'), _layout_help(voc_root, 'SegmentationClass'))
  voc_val = read_ids(os.path.join(voc_lists, 'val.txt'), _layout_help(voc_root, 'SegmentationClass'))
  sbd = [i for name in ('train.txt', 'val.txt')
         for i in read_ids(os.path.join(sbd_root, name), _sbd_help(sbd_root))]
  # SBD's val overlaps VOC 2012 val; training on those would leak the evaluation images.
  ids = sorted((set(voc_train) | set(sbd)) - set(voc_val))
  return ids, set(voc_train)


def read_train_aug(voc_root: str, sbd_root: str) -> Split:
  """train_aug from VOC 2012 and SBD: VOC's own PNG label where VOC annotates an image, else SBD's .mat.

  Images come from VOC's JPEGImages (which holds every SBD image), else from SBD's img/ folder.
  """
  ids, voc_annotated = train_aug_ids(voc_root, sbd_root)
  images, labels = [], []
  for i in ids:
    voc_image = os.path.join(voc_root, 'JPEGImages', i + '.jpg')
    images.append(voc_image if epath.Path(voc_image).is_file() else os.path.join(sbd_root, 'img', i + '.jpg'))
    labels.append(os.path.join(voc_root, 'SegmentationClass', i + '.png') if i in voc_annotated
                  else os.path.join(sbd_root, 'cls', i + '.mat'))
  source = f'the VOC ({voc_root}) and SBD ({sbd_root}) split lists'
  return check_exist(Split('train_aug', tuple(images), tuple(labels)), source, _sbd_help(sbd_root))
