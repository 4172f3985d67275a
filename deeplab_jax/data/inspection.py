"""`--mode=inspect_data`: counts, image sizes and the class histogram of both splits, and every bad file,
so label mistakes show up before training does.

Reads every file once with the pipeline's own reader (threads: Pillow decodes without the GIL).
"""
import collections
import concurrent.futures
import dataclasses
import os

import ml_collections
import numpy as np

from deeplab_jax.data import datasets, labels, palette, reading, tfds_source
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError


@dataclasses.dataclass
class Report:
  """What inspecting one split found."""
  name: str
  num_images: int
  sizes: list = dataclasses.field(default_factory=list)  # (height, width) per readable image
  raw_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
  invalid_files: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(list))
  problems: list = dataclasses.field(default_factory=list)  # BadExample messages


def _scan_one(image_path: str, label_path: str, colors: np.ndarray, contents=(None, None)):
  """((h, w), bincount of stored label values [256]) or the BadExample naming what is wrong.

  contents: the (image, label) bytes when already read (records), else the files are read.
  """
  try:
    image = reading.read_image(image_path, contents[0])
    raw = reading.read_raw_label(label_path, contents[1], colors=colors)
    if raw.shape != image.shape[:2]:
      raise reading.BadExample(f'{label_path}: label is {raw.shape[0]}x{raw.shape[1]} (HxW) but its '
                               f'image is {image.shape[0]}x{image.shape[1]}')
    if raw.min() < 0 or raw.max() > 255:
      raise reading.BadExample(f'{label_path}: label values {raw.min()}..{raw.max()} exceed 0..255')
    return image.shape[:2], np.bincount(raw.reshape(-1).astype(np.int64), minlength=256)
  except reading.BadExample as e:
    return e


def _scan_record(split: tfds_source.RecordSplit, index: int, colors: np.ndarray):
  """_scan_one of record index of a tfds split, named 'tfds NAME split S example i'."""
  from tensorflow.core.example import example_pb2
  features = example_pb2.Example.FromString(split.read(index)).features.feature
  name = split.where(index)
  contents = [features[key].bytes_list.value[0] for key in (split.image_key, split.label_key)]
  return _scan_one(name, name, colors, contents)


def scan(split: Split | tfds_source.RecordSplit, table: np.ndarray,
         colors: np.ndarray | None = None) -> Report:
  """Reads every pair of split, noting the files holding values that table (a label map) rejects.

  colors: [K, 3] to decode RGB masks with (palette.for_config), None to refuse them.
  """
  report = Report(split.name, len(split))
  with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
    if isinstance(split, tfds_source.RecordSplit):
      names = [split.where(i) for i in range(len(split))]
      results = pool.map(lambda i: _scan_record(split, i, colors), range(len(split)))
    else:
      names = split.label_paths
      results = pool.map(lambda image, label: _scan_one(image, label, colors), split.image_paths,
                         split.label_paths)
    for label_path, result in zip(names, results):
      if isinstance(result, reading.BadExample):
        report.problems.append(str(result))
        continue
      report.sizes.append(result[0])
      report.raw_counts += result[1]
      for value in np.flatnonzero((result[1] > 0) & (table == labels.INVALID)):
        report.invalid_files[int(value)].append(label_path)
  return report


def _size_line(sizes) -> str:
  if not sizes:
    return 'sizes: no readable images'
  h, w = np.asarray(sizes).T
  stats = lambda v: f'{v.min()} / {int(np.median(v))} / {v.max()}'  # noqa: E731
  return f'height min/median/max {stats(h)}, width {stats(w)}'


def summarize(report: Report, data: ml_collections.ConfigDict, table: np.ndarray,
              train: bool = False) -> list[str]:
  """Printable lines; stored values the label map rejects, a large ignore share, a binary 0/255 mask
  read with ignore 255 and (train) classes without pixels are flagged with '!!'."""
  lines = [f'== {report.name}: {report.num_images} images, {len(report.problems)} unreadable or '
           'inconsistent', '  ' + _size_line(report.sizes)]
  total = max(int(report.raw_counts.sum()), 1)
  names = list(data.class_names) + [f'class_{i}' for i in range(len(data.class_names), data.num_classes)]
  per_class = np.bincount(table[table >= 0], weights=report.raw_counts[table >= 0], minlength=256)
  for cls in range(data.num_classes):
    lines.append(f'  {cls:>4} {names[cls]:<20} {int(per_class[cls]):>14,} px {per_class[cls] / total:8.3%}')
  lines.append(f'  {"":>4} {"ignore":<20} {int(per_class[data.ignore_label]):>14,} px '
               f'{per_class[data.ignore_label] / total:8.3%}')
  for value in np.flatnonzero((table == labels.INVALID) & (report.raw_counts > 0)):
    files = report.invalid_files[int(value)]
    lines.append(f'  !! stored value {value}: {report.raw_counts[value]:,} px in {len(files)} file(s) is '
                 f'neither a class nor ignore, e.g. {files[0]}')
  lines += ['  ' + line for line in labels.warnings(report.raw_counts, table, data.num_classes,
                                                   data.ignore_label, data.class_names, train)]
  lines += [f'  !! {problem}' for problem in report.problems[:20]]
  if len(report.problems) > 20:
    lines.append(f'  !! ... and {len(report.problems) - 20} more')
  return lines


def inspect_data(config: ml_collections.ConfigDict, log=print) -> bool:
  """Prints both splits' reports; True when no file has a problem (bad values included)."""
  data = config.data
  ok = True
  for split, train in zip(datasets.load_splits(data, log, check_sizes=False, check_labels=False),
                          (True, False)):
    table = labels.label_table(split.label_map, data.num_classes, data.ignore_label)
    report = scan(split, table, palette.for_config(data))
    lines = summarize(report, data, table, train)
    try:  # a partial dataset is still worth inspecting: report its size instead of stopping
      datasets.check_size(data, split)
    except UserError as e:
      lines.insert(1, f'  !! {e}')
    log('\n'.join(lines))
    ok &= not any(line.lstrip().startswith('!!') for line in lines)
  log('No problems found.' if ok else 'PROBLEMS FOUND: see the lines marked !! above.')
  return ok
