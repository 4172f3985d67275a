"""Tiny copies of each dataset's on-disk layout in its real file formats, written by the tests."""
import os

import numpy as np
from PIL import Image
import scipy.io
import scipy.sparse

from deeplab_jax.data.palette import voc_palette

H, W = 40, 56


def image(seed: int, h: int = H, w: int = W) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (h, w, 3), np.uint8)


def save_image(path, array, fmt=None):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path, fmt, **({'quality': 95} if str(path).endswith('.jpg') else {}))


def save_label(path, label, palette: bool = False):
  """label [H, W] uint8 as a greyscale PNG, or a palette PNG with the VOC colours."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  png = Image.fromarray(label.astype(np.uint8), 'L')
  if palette:
    png = Image.fromarray(label.astype(np.uint8), 'P')
    png.putpalette(voc_palette().reshape(-1).tolist())
  png.save(path)


def stripes(values, h: int = H, w: int = W) -> np.ndarray:
  """[h, w] uint8 whose column bands hold values in order."""
  return np.asarray(values, np.uint8)[np.arange(w) * len(values) // w][None].repeat(h, 0)


def write_list(path, ids):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(''.join(i + '\n' for i in ids))


def save_sbd_mat(path, segmentation):
  """SBD's cls/<id>.mat: a struct GTcls with Segmentation (uint8 [H, W]), Boundaries, CategoriesPresent."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  classes = np.unique(segmentation[(segmentation > 0) & (segmentation < 255)]).astype(np.uint8)
  boundaries = np.empty((20, 1), object)  # a cell of one sparse boundary map per class, as in SBD
  for k in range(20):
    boundaries[k, 0] = scipy.sparse.csc_matrix(segmentation.shape, dtype=bool)
  scipy.io.savemat(path, {'GTcls': {'Segmentation': segmentation.astype(np.uint8),
                                    'Boundaries': boundaries,
                                    'CategoriesPresent': classes[:, None]}})


# VOC 2012 + SBD: VOC train {a, b}, VOC val {c, d}; SBD train {b, e, c}, SBD val {f, d}.
# train_aug = VOC train + SBD - VOC val = {a, b, e, f}; b keeps VOC's own PNG label.
VOC_TRAIN, VOC_VAL, SBD_TRAIN, SBD_VAL = ['a', 'b'], ['c', 'd'], ['b', 'e', 'c'], ['f', 'd']


def voc_sbd(base) -> tuple[str, str]:
  """(VOC2012 root, SBD dataset root) under base; VOC labels are class 3 with a 255 border, SBD's 7."""
  voc, sbd = os.path.join(base, 'VOCdevkit', 'VOC2012'), os.path.join(base, 'benchmark_RELEASE', 'dataset')
  voc_label = np.full((H, W), 3, np.uint8)
  voc_label[:2], voc_label[-2:] = 255, 255
  for k, i in enumerate(sorted(set(VOC_TRAIN + VOC_VAL + SBD_TRAIN + SBD_VAL))):
    save_image(os.path.join(voc, 'JPEGImages', i + '.jpg'), image(k))
  for i in VOC_TRAIN + VOC_VAL:
    save_label(os.path.join(voc, 'SegmentationClass', i + '.png'), voc_label, palette=True)
  for i in SBD_TRAIN + SBD_VAL:
    save_sbd_mat(os.path.join(sbd, 'cls', i + '.mat'), np.full((H, W), 7, np.uint8))
  write_list(os.path.join(voc, 'ImageSets', 'Segmentation', 'train.txt'), VOC_TRAIN)
  write_list(os.path.join(voc, 'ImageSets', 'Segmentation', 'val.txt'), VOC_VAL)
  write_list(os.path.join(sbd, 'train.txt'), SBD_TRAIN)
  write_list(os.path.join(sbd, 'val.txt'), SBD_VAL)
  return voc, sbd


CITYSCAPES_IDS = (0, 4, 7, 26, 33)  # unlabeled, static (ignored), road, car, bicycle
CITYSCAPES_TRAIN_IDS = (255, 255, 0, 13, 18)  # their train ids, from cityscapesScripts' table


def cityscapes(root) -> str:
  """train: aachen (2) + bochum (1); val: frankfurt (1); labelIds stripes of CITYSCAPES_IDS."""
  frames = {'train': [('aachen', 0), ('aachen', 1), ('bochum', 0)], 'val': [('frankfurt', 0)]}
  for split, items in frames.items():
    for k, (city, frame) in enumerate(items):
      name = f'{city}_000000_{frame:06d}'
      save_image(os.path.join(root, 'leftImg8bit', split, city, name + '_leftImg8bit.png'), image(k))
      save_label(os.path.join(root, 'gtFine', split, city, name + '_gtFine_labelIds.png'),
                 stripes(CITYSCAPES_IDS))
      # The other gtFine files sit beside labelIds in the real layout; the reader must pick labelIds.
      save_label(os.path.join(root, 'gtFine', split, city, name + '_gtFine_instanceIds.png'),
                 stripes((1, 2)))
  return root


ADE_VALUES = (0, 1, 150)  # "other" (ignored), wall, the last class


def ade20k(root) -> str:
  """ADEChallengeData2016 with 3 training and 2 validation images; annotations stripes of ADE_VALUES."""
  for split, count in (('training', 3), ('validation', 2)):
    for k in range(count):
      name = f'ADE_{"train" if split == "training" else "val"}_{k + 1:08d}'
      save_image(os.path.join(root, 'images', split, name + '.jpg'), image(k))
      save_label(os.path.join(root, 'annotations', split, name + '.png'), stripes(ADE_VALUES))
  return root
