"""DeepLabv3+ decoder and depthwise-separable ASPP/decoder convs on Xception-65 (and the ResNet-101 decoder).

Every point trains at OS 16 and evaluates at OS 16, the setting of the figures below.
"""
BASE_CONFIG = 'configs/v3plus_voc.py'
PAPER_SOURCE = 'DeepLabv3+ paper, eval OS 16'
PAPER = {'xception': 79.17, 'xception_decoder': 79.93, 'xception_decoder_separable': 79.79,
         'resnet101_decoder': 78.85}


def get_sweep():
  def xception(decoder, separable):
    return {'model.decoder': decoder, 'model.aspp_separable': separable,
            'model.decoder_separable': separable, 'model.eval_output_stride': 16}
  return {
      'xception': xception(False, False),
      'xception_decoder': xception(True, False),
      'xception_decoder_separable': xception(True, True),
      'resnet101_decoder': {'_config': 'configs/v3plus_resnet101_voc.py', 'model.eval_output_stride': 16},
  }
