"""A built-in synthetic segmentation dataset, written in the PASCAL VOC layout.

Each image holds one to four objects of five classes on a cluttered background. A class is a shape
family (disc, box, triangle, star, ring) with its own hue band and surface texture; size, position,
rotation, aspect, exact hue and brightness vary per object, and objects occlude each other. The
background is a low-saturation gradient with grey clutter and sensor noise, so colour alone does not
make every pixel trivial near boundaries. Written as JPEGs, palette PNGs and ImageSets split files, it
is read by the same VOC-layout reader as the real dataset.
"""
import json

from etils import epath
import numpy as np
from PIL import Image

from deeplab_jax.data.palette import voc_palette

CLASS_NAMES = ('background', 'disc', 'box', 'triangle', 'star', 'ring')
_HUES = {1: 0.0, 2: 0.2, 3: 0.4, 4: 0.6, 5: 0.8}  # hue band centre per class, in turns
_MARKER = 'synthetic.json'


def _hsv_to_rgb(h, s, v):
  """Vectorised HSV (all in [0, 1]) -> RGB float in [0, 1], [..., 3]."""
  i = np.floor(h * 6).astype(int) % 6
  f = h * 6 - np.floor(h * 6)
  p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
  choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
  rgb = [np.select([i == k for k in range(6)], [c[ch] for c in choices]) for ch in range(3)]
  return np.stack(rgb, axis=-1)


def _shape_mask(label: int, xx, yy, radius: float, rng: np.random.Generator) -> np.ndarray:
  """Boolean mask of one object of class `label` centred at (0, 0) in rotated coordinates xx, yy."""
  aspect = rng.uniform(0.6, 1.4)
  u, w = xx * aspect, yy / aspect
  dist, angle = np.hypot(u, w), np.arctan2(w, u)
  if label == 1:  # disc (an ellipse after the aspect stretch)
    return dist < radius
  if label == 2:  # box
    return (np.abs(u) < radius) & (np.abs(w) < radius * rng.uniform(0.5, 1.0))
  if label == 3:  # triangle: inside three half-planes
    normals = [np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]
    return np.all([u * np.cos(a) + w * np.sin(a) < radius / 2 for a in normals], axis=0)
  if label == 4:  # five-pointed star
    return dist < radius * (0.7 + 0.3 * np.cos(5 * angle))
  inner = rng.uniform(0.35, 0.55)  # ring
  return (dist < radius) & (dist > radius * inner)


def _texture(label: int, xx, yy, rng: np.random.Generator) -> np.ndarray:
  """Brightness modulation in [0.6, 1] that differs per class: shading, stripes, checks, speckle, bands."""
  period = rng.uniform(4, 9)
  if label == 1:
    pattern = 1 - np.clip(np.hypot(xx, yy) / (3 * period * 4), 0, 1)
  elif label == 2:
    pattern = (np.sin(xx * 2 * np.pi / period) > 0).astype(float)
  elif label == 3:
    pattern = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(float)
  elif label == 4:
    pattern = rng.uniform(0, 1, xx.shape)
  else:
    pattern = 0.5 + 0.5 * np.cos(np.hypot(xx, yy) * 2 * np.pi / (2 * period))
  return 0.6 + 0.4 * pattern


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
  """Low-saturation gradient + grey clutter rectangles and ellipses, RGB float [h, w, 3]."""
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  hue = np.full((h, w), rng.uniform(0, 1))
  value = np.clip(rng.uniform(0.3, 0.7) + rng.uniform(-0.3, 0.3) * xx + rng.uniform(-0.3, 0.3) * yy, 0, 1)
  image = _hsv_to_rgb(hue, np.full((h, w), rng.uniform(0, 0.15)), value)
  for _ in range(rng.integers(8, 20)):
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = rng.uniform(2, h / 6), rng.uniform(2, w / 6)
    py, px = np.mgrid[0:h, 0:w]
    if rng.uniform() < 0.5:
      mask = ((py - cy) / ry) ** 2 + ((px - cx) / rx) ** 2 < 1
    else:
      mask = (np.abs(py - cy) < ry) & (np.abs(px - cx) < rx)
    image[mask] = rng.uniform(0.1, 0.9) * np.array([1, 1, 1]) + rng.uniform(-0.05, 0.05, 3)
  return image


def render(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """One (image uint8 [h, w, 3], label uint8 [h, w]) pair."""
  image, label = _background(h, w, rng), np.zeros((h, w), np.uint8)
  py, px = np.mgrid[0:h, 0:w].astype(float)
  for _ in range(rng.integers(1, 5)):
    cls = int(rng.integers(1, len(CLASS_NAMES)))
    radius = rng.uniform(0.18, 0.4) * min(h, w)
    cy, cx, theta = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w, rng.uniform(0, np.pi)
    xx = (px - cx) * np.cos(theta) + (py - cy) * np.sin(theta)
    yy = -(px - cx) * np.sin(theta) + (py - cy) * np.cos(theta)
    mask = _shape_mask(cls, xx, yy, radius, rng)
    hue = (_HUES[cls] + rng.uniform(-0.05, 0.05)) % 1.0
    color = _hsv_to_rgb(np.full((h, w), hue), np.full((h, w), rng.uniform(0.55, 1.0)),
                        _texture(cls, xx, yy, rng) * rng.uniform(0.7, 1.0))
    image[mask], label[mask] = color[mask], cls
  noisy = image * 255 + rng.normal(0, 6, image.shape)
  return np.clip(noisy, 0, 255).astype(np.uint8), label


def _write_split(root: str, split: str, names: list[str], sizes, rng: np.random.Generator):
  palette = voc_palette().reshape(-1).tolist()
  for name, (h, w) in zip(names, sizes):
    image, label = render(int(h), int(w), rng)
    with epath.Path(root, 'JPEGImages', name + '.jpg').open('wb') as f:
      Image.fromarray(image).save(f, 'JPEG', quality=92)
    png = Image.fromarray(label, mode='P')
    png.putpalette(palette)
    with epath.Path(root, 'SegmentationClass', name + '.png').open('wb') as f:
      png.save(f, 'PNG')
  epath.Path(root, 'ImageSets', 'Segmentation', split + '.txt').write_text(''.join(n + '\n' for n in names))


def generate(root: str, num_train: int, num_val: int, min_size: int, max_size: int, seed: int,
             log=print) -> None:
  """Writes the dataset under root (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/)."""
  settings = dict(num_train=num_train, num_val=num_val, min_size=min_size, max_size=max_size, seed=seed)
  for sub in ('JPEGImages', 'SegmentationClass', 'ImageSets/Segmentation'):
    epath.Path(root, sub).mkdir(parents=True, exist_ok=True)
  log(f'Writing the synthetic dataset ({num_train} train + {num_val} val images) to {root}')
  for split, count, offset in (('train', num_train, 0), ('val', num_val, num_train)):
    rng = np.random.default_rng([seed, offset])
    names = [f'synth_{offset + i:06d}' for i in range(count)]
    sizes = rng.integers(min_size, max_size + 1, size=(count, 2))
    _write_split(root, split, names, sizes, rng)
  # Written last: its presence means the whole dataset is there.
  epath.Path(root, _MARKER).write_text(json.dumps(settings))


def ensure(root: str, num_train: int, num_val: int, min_size: int, max_size: int, seed: int,
           log=print) -> None:
  """Generates the dataset unless root already holds one made with the same settings."""
  settings = dict(num_train=num_train, num_val=num_val, min_size=min_size, max_size=max_size, seed=seed)
  marker = epath.Path(root, _MARKER)
  if marker.exists() and json.loads(marker.read_text()) == settings:
    return
  generate(root, log=log, **settings)
