"""Cityscapes fields shared by the Cityscapes configs: 19 train ids, 769 crops of 1024x2048 images,
evaluated whole on a 1025x2049 canvas (the official eval_crop_size)."""

CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car', 'truck',
                      'bus', 'train', 'motorcycle', 'bicycle')


def set_cityscapes_data(config):
  """Points config.data at Cityscapes fine (train -> val) with the DeepLab recipe's crop and scales."""
  data = config.data
  data.dataset = 'cityscapes'  # leftImg8bit/ + gtFine/ with labelTrainIds PNGs
  data.root = 'data/cityscapes'
  data.label_dir = 'gtFine'
  data.train_split = 'train'  # 2,975 finely annotated images
  data.eval_split = 'val'  # 500 images
  data.num_classes = len(CITYSCAPES_CLASSES)
  data.class_names = CITYSCAPES_CLASSES
  data.crop_size = 769  # DeepLab's Cityscapes training crop
  data.eval_size = (1025, 2049)  # whole 1024x2048 images + 1 row and column (OS * k + 1), as the official
  config.train.batch_size = 8  # the v3 paper's Cityscapes batch
  config.train.num_steps = 90_000  # the official Cityscapes recipe
  config.train.base_lr = 0.01
  config.eval.batch_size = 1
  return config
