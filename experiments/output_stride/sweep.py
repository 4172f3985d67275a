"""Output stride at training and at evaluation: DeepLabv3 ResNet-101 with ASPP on VOC 2012 val."""
BASE_CONFIG = 'configs/v3_voc.py'
PAPER_SOURCE = 'DeepLabv3 paper: train OS 16 -> eval OS 16 / 8; other strides are not in the paper'
PAPER = {'train16_eval16': 77.21, 'train16_eval8': 78.51}


def get_sweep():
  return {
      'train8_eval8': {'model.output_stride': 8, 'model.eval_output_stride': 8},
      'train16_eval16': {'model.output_stride': 16, 'model.eval_output_stride': 16},
      'train16_eval8': {'model.output_stride': 16, 'model.eval_output_stride': 8},
      'train32_eval32': {'model.output_stride': 32, 'model.eval_output_stride': 32},
  }
