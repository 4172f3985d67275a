"""BatchNorm needs a large global batch: DeepLabv3 ResNet-101 trained with batch 4, 8, 12, 16 (OS 16)."""
BASE_CONFIG = 'configs/v3_voc.py'
PAPER_SOURCE = 'DeepLabv3 paper, OS 16'
PAPER = {'batch4': 64.43, 'batch8': 75.76, 'batch12': 76.49, 'batch16': 77.21}


def get_sweep():
  return {f'batch{b}': {'train.batch_size': b, 'model.eval_output_stride': 16} for b in (4, 8, 12, 16)}
