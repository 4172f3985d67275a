"""--mode=inspect_data: counts, sizes and class histogram, with bad values and files flagged."""
import subprocess
import sys

import numpy as np

from configs import base
from deeplab_jax.data import inspection
from tests.conftest import ROOT, tiny_config
from tests.data import miniatures


def test_histogram_sizes_and_flags(tmp_path):
  for k, (stem, values) in enumerate([('a', (0, 1)), ('b', (1, 255)), ('c', (0, 7))]):
    miniatures.save_image(str(tmp_path / 'images' / 'train' / f'{stem}.jpg'), miniatures.image(k, w=56 + k))
    miniatures.save_label(str(tmp_path / 'labels' / 'train' / f'{stem}.png'),
                          miniatures.stripes(values, w=56 + k))
  config = tiny_config(str(tmp_path))
  data = config.data
  data.dataset, data.label_dir, data.num_classes, data.class_names = 'folder', 'labels', 2, ('bg', 'cat')
  data.train_split = data.eval_split = 'train'
  lines = []
  assert not inspection.inspect_data(config, log=lines.append)
  text = '\n'.join(lines)
  assert '3 images' in text and 'height min/median/max 40 / 40 / 40, width 56 / 57 / 58' in text
  pixels = {line.split()[-4]: int(line.split()[-3].replace(',', '')) for line in lines[0].splitlines()
            if line.endswith('%') and ' px ' in line}
  # Two-band stripes: a (56 wide) 28 + 28 columns, b (57) 29 + 28, c (58) 29 + 29; 40 rows.
  assert pixels == {'bg': 40 * (28 + 29), 'cat': 40 * (28 + 29), 'ignore': 40 * 28}
  assert 'ignore' in text and '!! stored value 7:' in text and 'c.png' in text
  assert text.rstrip().endswith('PROBLEMS FOUND: see the lines marked !! above.')


def test_main_inspect_data_mode(tmp_path):
  args = ['--config=configs/quickstart.py', f'--config.data.root={tmp_path}',
          '--config.data.synthetic.num_train=6', '--config.data.synthetic.num_val=2',
          '--config.data.synthetic.min_size=40', '--config.data.synthetic.max_size=50']
  proc = subprocess.run([sys.executable, '-m', 'deeplab_jax.main', '--mode=inspect_data', *args],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert '== train: 6 images' in proc.stdout and '== val: 2 images' in proc.stdout
  assert 'No problems found.' in proc.stdout
  counts = [int(line.split()[2].replace(',', '')) for line in proc.stdout.splitlines()
            if line.strip()[:1].isdigit()]
  assert len(counts) == 12 and sum(counts[:6]) > 0 and np.all(np.asarray(counts) >= 0)


def test_partial_voc_is_inspected_with_its_size_flagged(tmp_path):
  voc_root, sbd_root = miniatures.voc_sbd(str(tmp_path))
  config = tiny_config(voc_root)
  data = config.data
  data.dataset, data.sbd_root, data.num_classes, data.expect_counts = 'voc', sbd_root, 21, True
  data.train_split, data.label_dir = 'train_aug', 'SegmentationClass'
  data.class_names = base.VOC_CLASSES
  lines = []
  assert not inspection.inspect_data(config, log=lines.append)
  train, val = lines[0].splitlines(), lines[1].splitlines()
  assert train[0].startswith('== train_aug: 4 images') and 'full dataset has 10,582' in train[1]
  assert val[0].startswith('== val: 2 images') and 'full dataset has 1,449' in val[1]
  assert any(line.split()[:2] == ['7', 'car'] and line.split()[2] == f'{2 * 40 * 56:,}' for line in train)


def binary_masks(tmp_path, count: int = 3):
  """A folder dataset of 0/255 masks (the commonest user format), read with the default config."""
  for k in range(count):
    miniatures.save_image(str(tmp_path / 'images' / 'train' / f'{k}.jpg'), miniatures.image(k))
    miniatures.save_label(str(tmp_path / 'labels' / 'train' / f'{k}.png'), miniatures.stripes((0, 255)))
  config = tiny_config(str(tmp_path))
  data = config.data
  data.dataset, data.label_dir, data.num_classes, data.class_names = 'folder', 'labels', 2, ('bg', 'fg')
  data.train_split = data.eval_split = 'train'
  return config


def test_binary_masks_are_flagged_with_cause_and_fix(tmp_path):
  config = binary_masks(tmp_path)
  lines = []
  assert not inspection.inspect_data(config, log=lines.append)
  train = lines[0]
  assert "!! stored values are only 0 and 255 (a binary mask) and 255 is the ignore label: the whole " \
         "foreground (50.0% of the pixels) is ignored. Set --config.data.label_map='0:0,255:1'" in train
  assert '!! 1 class(es) have no pixels in this split: 1 (fg)' in train
  config.data.label_map = '0:0,255:1'  # the fix it names: clean
  lines = []
  assert inspection.inspect_data(config, log=lines.append), lines
  assert 'fg' in lines[0] and '!!' not in lines[0]


def test_start_of_training_warns_from_a_sample(tmp_path):
  from deeplab_jax.data import datasets
  config = binary_masks(tmp_path)
  logged = []
  datasets.load_splits(config.data, log=logged.append)
  assert len(logged) == 1 and logged[0].startswith('!! stored values are only 0 and 255')
  assert 'from 3 sampled labels of train' in logged[0]
  config.data.label_map = '0:0,255:1'
  logged = []
  datasets.load_splits(config.data, log=logged.append)
  assert logged == []


def test_large_ignore_share_is_flagged():
  from deeplab_jax.data import labels
  table = labels.label_table('identity', 3, 255)
  counts = np.zeros(256, np.int64)
  counts[[0, 1, 2, 255]] = [30, 20, 10, 40]
  (line,) = labels.warnings(counts, table, 3, 255)
  assert line.startswith('!! 40.0% of the pixels are ignore (stored values 255)')
  counts[255] = 5
  assert labels.warnings(counts, table, 3, 255, every_class=True) == []
