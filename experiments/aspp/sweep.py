"""ASPP atrous rates and the image-pooling branch: DeepLabv3 ResNet-101, train and eval OS 16."""
BASE_CONFIG = 'configs/v3_voc.py'
PAPER_SOURCE = 'DeepLabv3 paper: only the full model (rates 6, 12, 18 + image pooling) at OS 16'
PAPER = {'rates_6_12_18_pool': 77.21}


def get_sweep():
  points = {}
  for rates in ((6, 12, 18), (12, 24, 36)):
    for pool in (True, False):
      name = 'rates_' + '_'.join(map(str, rates)) + ('_pool' if pool else '_no_pool')
      points[name] = {'model.aspp_rates': rates, 'model.image_pooling': pool,
                      'model.eval_output_stride': 16}
  return points
