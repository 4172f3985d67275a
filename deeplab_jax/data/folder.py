"""Reader of any folder of labelled images, in either of two layouts:

    ROOT/<image_dir>/<split>/<stem>.<jpg|jpeg|png|bmp|tif|tiff>  with  ROOT/<label_dir>/<split>/<stem>.png
      (a folder name holding '{split}' is that folder itself: image_dir='{split}', label_dir='{split}annot'
      read SegNet's CamVid layout ROOT/train + ROOT/trainannot)
    a list file (ROOT/<split> or an absolute path) of `image label` path pairs, one pair per line,
    relative to ROOT (a leading '/' as in DeepLab's own lists is read as relative to ROOT too)

Labels hold class indices (palette or greyscale PNG); num_classes, ignore_label, class names and palette
come from the config.
"""
import os

from etils import epath

from deeplab_jax.data.split import Split, check_exist
from deeplab_jax.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff')


def _by_stem(folder: str, extensions: tuple[str, ...]) -> dict[str, str]:
  """stem -> path of the files in folder with one of extensions; two files sharing a stem is an error."""
  found = {}
  for name in sorted(p.name for p in epath.Path(folder).iterdir()):
    stem, ext = os.path.splitext(name)
    if ext.lower() in extensions:
      if stem in found:
        raise UserError(f'Two files in {folder} share the stem {stem!r} ({os.path.basename(found[stem])}'
                        f', {name}); images and labels are matched by stem, so stems must be unique.')
      found[stem] = os.path.join(folder, name)
  return found


def read_folders(image_dir: str, label_dir: str, split: str) -> Split:
  """Images matched to labels by file stem; every image needs a label."""
  for folder in (image_dir, label_dir):
    if not epath.Path(folder).is_dir():
      raise UserError(f'Folder {folder} not found. The folder dataset expects images in '
                      f'ROOT/<image_dir>/<split> and label PNGs with the same stems in '
                      f'ROOT/<label_dir>/<split>, or the split naming a list file of `image label` pairs.')
  images, labels = _by_stem(image_dir, IMAGE_EXTENSIONS), _by_stem(label_dir, ('.png',))
  if not images:
    raise UserError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in {image_dir}.')
  unlabelled = sorted(set(images) - set(labels))
  if unlabelled:
    raise UserError(f'{len(unlabelled)} image(s) in {image_dir} have no label PNG of the same stem in '
                    f'{label_dir}, first: {os.path.basename(images[unlabelled[0]])}.')
  stems = sorted(images)
  return Split(split, tuple(images[s] for s in stems), tuple(labels[s] for s in stems))


def _resolve(root: str, path: str) -> str:
  if '://' in path or (os.path.isabs(path) and epath.Path(path).exists()):
    return path
  return os.path.join(root, path.lstrip('/'))


def read_list(root: str, list_file: str, name: str) -> Split:
  """The `image label` pairs of list_file, resolved against root."""
  images, labels = [], []
  with epath.Path(list_file).open() as f:
    for number, line in enumerate(f, 1):
      words = line.split()
      if not words:
        continue
      if len(words) != 2:
        raise UserError(f'{list_file} line {number}: expected `image_path label_path`, got {line.strip()!r}.')
      images.append(_resolve(root, words[0]))
      labels.append(_resolve(root, words[1]))
  if not images:
    raise UserError(f'Split file {list_file} lists no images.')
  return check_exist(Split(name, tuple(images), tuple(labels)), list_file)


def read_split(root: str, split: str, image_dir: str, label_dir: str) -> Split:
  """split as a list file if one exists at split or ROOT/split, else as image/label folders."""
  if not epath.Path(root).is_dir():
    raise UserError(f'Dataset folder {root} does not exist (set --config.data.root).')
  list_file = split if os.path.isabs(split) or '://' in split else os.path.join(root, split)
  if split and epath.Path(list_file).is_file():
    return read_list(root, list_file, os.path.splitext(os.path.basename(split))[0])
  return read_folders(split_folder(root, image_dir, split), split_folder(root, label_dir, split), split)


def split_folder(root: str, folder: str, split: str) -> str:
  """ROOT/folder/split, or ROOT/<folder with {split} replaced> when folder names the split itself."""
  if '{split}' in folder:
    return os.path.join(root, folder.replace('{split}', split))
  return os.path.join(root, folder, split)
