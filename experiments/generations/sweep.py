"""Generations v1 -> v2 -> v3 -> v3+: each paper's VOC recipe, as its config file, on PASCAL VOC 2012 val."""
BASE_CONFIG = 'configs/v3_voc.py'
PAPER_SOURCE = ('v1: 62.25 before CRF (configs/v1_voc.py docstring; 67.64 with CRF); '
                'v2: 76.35 with COCO pre-training; v3, v3+: their papers (README table)')
PAPER = {
    'v1_largefov': 62.25,  # DeepLab-LargeFOV before CRF (67.64 with CRF)
    'v2_aspp_l': 76.35,  # MSC + COCO + aug + ASPP; our config has no COCO pre-training
    'v3': 78.51,  # train OS 16, eval OS 8
    'v3plus_resnet101': 78.85,  # decoder, train and eval OS 16
    'v3plus_xception': 79.79,  # Xception-65, decoder, separable convs, train and eval OS 16
}


def get_sweep():
  return {
      'v1_largefov': {'_config': 'configs/v1_voc.py'},
      'v2_aspp_l': {'_config': 'configs/v2_voc.py'},
      'v3': {},
      'v3plus_resnet101': {'_config': 'configs/v3plus_resnet101_voc.py', 'model.eval_output_stride': 16},
      'v3plus_xception': {'_config': 'configs/v3plus_voc.py', 'model.eval_output_stride': 16},
  }
