"""DeepLabv3, ResNet-101, ADE20K SceneParsing training -> validation (150 classes).

The VOC v3 model (ASPP 6/12/18 at OS 16 with image pooling, multi-grid 1, 2, 4; evaluated at output
stride 8) on ADE20K with the official crop and evaluation protocol of TF DeepLab (ade20k.md:
train_crop_size 513, min_resize_value = max_resize_value = 513): every validation image resized keeping
its ratio to fit 513x513, its predictions resized back to the original label, which the metrics count
(data.eval_protocol='resize'). Stored 0 ("other") is ignored, 1..150 are the classes.

TF DeepLab also resizes each *training* image to a 513 long side before the random scale; here
training images keep their stored size (most are 512 px on the short side already).
"""
from configs import v3_voc
from deeplab_jax.data import labels

# ADEChallengeData2016's objectInfo150 classes in label order 1..150 (first name of each, as
# mmsegmentation's ADE20KDataset lists them).
ADE20K_CLASSES = (
    'wall', 'building', 'sky', 'floor', 'tree', 'ceiling', 'road', 'bed', 'windowpane', 'grass',
    'cabinet', 'sidewalk', 'person', 'earth', 'door', 'table', 'mountain', 'plant', 'curtain', 'chair',
    'car', 'water', 'painting', 'sofa', 'shelf', 'house', 'sea', 'mirror', 'rug', 'field', 'armchair',
    'seat', 'fence', 'desk', 'rock', 'wardrobe', 'lamp', 'bathtub', 'railing', 'cushion', 'base', 'box',
    'column', 'signboard', 'chest of drawers', 'counter', 'sand', 'sink', 'skyscraper', 'fireplace',
    'refrigerator', 'grandstand', 'path', 'stairs', 'runway', 'case', 'pool table', 'pillow',
    'screen door', 'stairway', 'river', 'bridge', 'bookcase', 'blind', 'coffee table', 'toilet', 'flower',
    'book', 'hill', 'bench', 'countertop', 'stove', 'palm', 'kitchen island', 'computer', 'swivel chair',
    'boat', 'bar', 'arcade machine', 'hovel', 'bus', 'towel', 'light', 'truck', 'tower', 'chandelier',
    'awning', 'streetlight', 'booth', 'television receiver', 'airplane', 'dirt track', 'apparel', 'pole',
    'land', 'bannister', 'escalator', 'ottoman', 'bottle', 'buffet', 'poster', 'stage', 'van', 'ship',
    'fountain', 'conveyer belt', 'canopy', 'washer', 'plaything', 'swimming pool', 'stool', 'barrel',
    'basket', 'waterfall', 'tent', 'bag', 'minibike', 'cradle', 'oven', 'ball', 'food', 'step', 'tank',
    'trade name', 'microwave', 'pot', 'animal', 'bicycle', 'lake', 'dishwasher', 'screen', 'blanket',
    'sculpture', 'hood', 'sconce', 'vase', 'traffic light', 'tray', 'ashcan', 'fan', 'pier', 'crt screen',
    'plate', 'monitor', 'bulletin board', 'shower', 'radiator', 'glass', 'clock', 'flag')
assert len(ADE20K_CLASSES) == labels.ADE20K_NUM_CLASSES


def set_ade20k_data(config):
  """Points config.data at ADEChallengeData2016 (training -> validation) with the official protocol."""
  data = config.data
  data.dataset = 'ade20k'  # images/{training,validation}/*.jpg + annotations/*/*.png (0..150)
  data.root = 'data/ADEChallengeData2016'
  data.train_split = 'training'  # 20,210 images
  data.eval_split = 'validation'  # 2,000 images
  data.label_map = 'ade20k'  # stored 0 = ignore, 1..150 -> classes 0..149 (reduce_zero_label)
  data.num_classes = labels.ADE20K_NUM_CLASSES
  data.class_names = ADE20K_CLASSES
  data.crop_size = 513  # ade20k.md: train_crop_size 513x513
  data.eval_size = 513
  data.eval_protocol = 'resize'  # fit 513x513 keeping the ratio; predictions back to the label
  config.train.num_steps = 150_000  # ade20k.md: training_number_of_steps
  config.eval.batch_size = 1
  return config


def get_config():
  return set_ade20k_data(v3_voc.get_config())
