"""Multi-grid rates of block4's three units: DeepLabv3 ResNet-101 + ASPP, train and eval OS 16."""
BASE_CONFIG = 'configs/v3_voc.py'
PAPER_SOURCE = 'DeepLabv3 paper: only the (1, 2, 4) recipe at OS 16'
PAPER = {'mg_1_2_4': 77.21}


def get_sweep():
  grids = {'mg_1_1_1': (1, 1, 1), 'mg_1_2_1': (1, 2, 1), 'mg_1_2_4': (1, 2, 4), 'mg_2_2_2': (2, 2, 2)}
  return {name: {'model.multi_grid': grid, 'model.eval_output_stride': 16}
          for name, grid in grids.items()}
