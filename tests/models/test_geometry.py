"""Resize geometry: features of the model's strided convs sit on pixels s * i, and every size in use
brings them back there; MSC fusion on the logit grid; corner-aligned scaled sizes and label subsampling."""
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.pretrained import torchvision_deeplabv3
from deeplab_jax.data.sizes import height_width
from deeplab_jax.models import layers
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.ops.atrous import AtrousConv
from tests.conftest import tiny_config

DEEPLAB_CONFIGS = ('v1_voc', 'v2_voc', 'v3_voc', 'v3_cityscapes', 'v3plus_voc', 'v3plus_cityscapes',
                   'v3plus_mobilenetv2_voc', 'v3plus_resnet101_voc', 'quickstart')
# The multi-scale eval scales of the v2/v3 papers (0.5..1.75 step 0.25), beside each config's own.
MS_EVAL_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
# Image sides predict pads (VOC's 500 x 375, a Cityscapes side, a phone picture's short side).
PREDICT_SIDES = (375, 500, 1024, 720)


def load(name):
  return importlib.import_module(f'configs.{name}').get_config()


def strides_in_use(config):
  """The logits' strides a config trains and evaluates at, and the decoder's 4."""
  model = config.model
  strides = {model.output_stride, model.eval_output_stride or model.output_stride}
  return strides | ({4} if model.decoder else set())


def sizes_in_use(config, name):
  """Every image side a config runs the model at: crop, eval, export, predict (tiles, padding), MSC
  and multi-scale eval scales."""
  data = config.data
  crops = [data.crop_size]
  evals = [*height_width(data.eval_size, 'data.eval_size'), config.export.image_size,
           config.predict.tile_size]
  evals += [layers.padded_size(d, config.predict.pad_multiple, True) for d in PREDICT_SIDES]
  sizes = set(crops)
  for crop in crops:
    sizes |= {layers.scaled_size((crop, crop), s, True)[0] for s in config.model.msc_scales}
  for side in evals:
    for scale in set(MS_EVAL_SCALES) | set(config.eval.scales):
      sizes.add(layers.scaled_size((side, side), scale, True)[0])
  return sizes


def size_stride_pairs():
  pairs = set()
  for name in DEEPLAB_CONFIGS:
    config = load(name)
    pairs |= {(size, stride) for size in sizes_in_use(config, name) for stride in strides_in_use(config)
              if stride > 4 or size <= 1100}  # the decoder at stride 4: whole-image sizes are enough
  return sorted(pairs)


TENT = np.zeros((3, 3, 1, 1), np.float32)
TENT[:, 1, 0, 0] = (0.25, 0.5, 0.25)  # a centroid-preserving blur along H; any symmetric kernel sits here


@functools.partial(jax.jit, static_argnames=('strides', 'align_corners'))
def round_trips(x, strides, align_corners):
  """{stride: (features, x back at its size)} of impulses x [N, H, 1, 1] sent through the backbones'
  own stride-2 3x3 convs (ops.atrous.AtrousConv, kernel TENT) down to each of `strides`, then
  resize_bilinear back to H."""
  conv, low, stride, out = AtrousConv(1, 3, 1, 2, impl='dilation'), x, 1, {}
  while stride < max(strides):
    low, stride = conv.apply({'params': {'kernel': jnp.asarray(TENT)}}, low), stride * 2
    if stride in strides:
      out[stride] = low, layers.resize_bilinear(low, x.shape[1:3], align_corners)
  return out


def centroid_errors(size, strides, align_corners):
  """{stride: (max |centroid - p| over probe_positions after the round trip, features)}."""
  positions = probe_positions(size, max(strides))
  x = np.zeros((len(positions), size, 1, 1), np.float32)
  x[np.arange(len(positions)), positions] = 1.0
  errors = {}
  for stride, (low, back) in round_trips(jnp.asarray(x), tuple(sorted(strides)), align_corners).items():
    back = np.asarray(back)[:, :, 0, 0]
    centroid = back @ np.arange(size) / back.sum(1)
    errors[stride] = np.abs(centroid - np.asarray(positions)).max(), low.shape[1]
  return errors


def probe_positions(size, stride):
  """Impulses near the start, in the middle and near the end, 2 strides clear of the borders (where
  the last hat function is cut in half)."""
  return [2 * stride + 3, size // 2 + 1, size - 1 - 2 * stride - 5]


def random_variables(model, x, seed=0):
  """Variables of model's shapes, normal(0, 0.3) params and unit BatchNorm statistics, without the
  minute that compiling model.init takes on XLA:CPU."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), x)
  rng = np.random.default_rng(seed)
  params = jax.tree.map(lambda s: jnp.asarray(rng.normal(0, 0.3, s.shape), s.dtype), shapes['params'])
  stats = {} if 'batch_stats' not in shapes else jax.tree_util.tree_map_with_path(
      lambda path, s: jnp.full(s.shape, 1.0 if path[-1].key == 'var' else 0.0, s.dtype),
      shapes['batch_stats'])
  return {'params': params, 'batch_stats': stats}


def raw_logits(model, images):
  """The model's logits on their own grid, before any upsampling (a method for model.apply)."""
  return model.single_scale(images)['logits']


@pytest.mark.parametrize('name', DEEPLAB_CONFIGS)
def test_deeplab_configs_are_corner_aligned_with_sizes_of_os_k_plus_1(name):
  config = load(name)
  assert config.model.upsample_align_corners
  bad = [(size, stride) for size in sizes_in_use(config, name) for stride in strides_in_use(config)
         if (size - 1) % stride]
  assert not bad, f'{name}: sides not of the form stride * k + 1: {bad}'


def test_pytorch_peer_configs_keep_half_pixel():
  assert not torchvision_deeplabv3.get_config('resnet50').model.upsample_align_corners


def test_impulse_comes_back_on_its_pixel_at_every_size_in_use():
  pairs = size_stride_pairs()
  assert {(513, 16), (257, 8), (2049, 8), (257, 4), (897, 16), (321, 8)} <= set(pairs)
  for size in sorted({size for size, _ in pairs}):
    strides = {stride for side, stride in pairs if side == size}
    for stride, (error, grid) in centroid_errors(size, strides, True).items():
      assert grid == (size - 1) // stride + 1, (size, stride)  # the last feature is on the last pixel
      assert error <= 0.5, f'side {size} at stride {stride}: impulse moved by {error:.2f} px'


@pytest.mark.parametrize('stride,at_least', [(16, 6.0), (8, 3.0), (4, 1.4)])
def test_half_pixel_upsampling_moves_the_impulse(stride, at_least):
  # The misregistration at 513 (up to 7.25 px at OS 16, 3.4 at OS 8, 1.5 at the decoder's 4).
  error, _ = centroid_errors(513, {stride}, False)[stride]
  assert error >= at_least


def test_the_real_model_upsamples_corner_aligned():
  # A model built from a DeepLab config: its logits at 33 (OS 16) are its 3 x 3 features on pixels
  # 0, 16 and 32, interpolated between them.
  config = tiny_config()
  config.model.resnet.blocks, config.model.multi_grid = (1, 1, 1, 1), ()
  model = build_model(config, train=False)
  assert model.upsample_align_corners

  @jax.jit
  def run(variables, x):
    return model.apply(variables, x)['logits'], model.apply(variables, x, method=raw_logits)
  x = jax.random.normal(jax.random.key(0), (1, 33, 33, 3))
  logits, raw = run(random_variables(model, x), x)
  assert raw.shape[1:3] == (3, 3)
  np.testing.assert_allclose(logits[:, ::16, ::16], raw, atol=1e-5)


def test_scaled_size_is_the_official_scale_dimension():
  # scale_dimension(dim, scale) = int((dim - 1) * scale + 1), written out.
  for dim, scale, want in [(513, 0.5, 257), (513, 0.75, 385), (513, 1.75, 897), (500, 0.5, 250),
                           (321, 0.75, 241), (2049, 0.25, 513), (769, 1.25, 961)]:
    assert int((dim - 1) * scale + 1) == want
    assert layers.scaled_size((dim, dim), scale, corner_aligned=True) == (want, want)
  assert layers.scaled_size((513, 513), 0.5, corner_aligned=False) == (256, 256)  # half-pixel


def test_padded_size():
  assert [layers.padded_size(d, 32, True) for d in (1, 33, 34, 500, 513)] == [1, 33, 65, 513, 513]
  assert [layers.padded_size(d, 32, False) for d in (1, 32, 33, 500)] == [32, 32, 64, 512]


def test_nearest_labels_subsample_by_the_stride():
  labels = jnp.asarray(np.random.default_rng(0).integers(0, 21, (2, 33, 41)), jnp.int32)
  np.testing.assert_array_equal(layers.resize_labels_nearest(labels, (5, 6)), labels[:, ::8, ::8])
  # TF's resize_nearest_neighbor(align_corners=True): round(i * (H - 1) / (h - 1)), by hand for 10 -> 4.
  row = jnp.arange(10)[None, :, None]
  assert layers.resize_labels_nearest(row, (4, 1))[0, :, 0].tolist() == [0, 3, 6, 9]
  assert layers.resize_labels_nearest(jnp.arange(9)[None, :, None], (4, 1))[0, :, 0].tolist() == [0, 3, 5, 8]


def corner_resize(x, size):
  """Corner-aligned bilinear resize of [B, H, W, C] with numpy's interp, one axis then the other."""
  x = np.asarray(x, np.float64)
  for axis, out in ((1, size[0]), (2, size[1])):
    grid = np.linspace(0, x.shape[axis] - 1, out)
    x = np.apply_along_axis(lambda v, g=grid: np.interp(g, np.arange(len(v)), v), axis, x)
  return x


def v2_msc_config(fuse_at):
  config = tiny_config()
  model = config.model
  model.head, model.fc_features, model.multi_grid, model.output_stride = 'aspp_l', 0, (), 8
  model.resnet.blocks = (1, 1, 1, 1)
  model.msc_scales, model.msc_fuse_at = (1.0, 0.75, 0.5), fuse_at
  config.data.num_classes = 6
  return config


def test_msc_fuses_by_max_on_the_logit_grid_then_upsamples():
  # The official multi_scale_logits: every scale's logits resized to the 1.0 scale's logit grid,
  # max over scales there, then one upsampling to the input size.
  model = build_model(v2_msc_config('logits'), train=False)
  each_first = build_model(v2_msc_config('input'), train=False)
  x = jax.random.normal(jax.random.key(0), (1, 33, 33, 3))
  sides = (33, 25, 17)  # 33 * (1, 0.75, 0.5) as (d - 1) * s + 1
  pyramid = [jnp.asarray(corner_resize(x, (side, side)), jnp.float32) for side in sides]

  @jax.jit
  def run(variables, x, pyramid):
    raw = [model.apply(variables, im, method=raw_logits) for im in pyramid]
    return model.apply(variables, x), each_first.apply(variables, x), raw
  out, other, raw = run(random_variables(model, x), x, pyramid)
  assert [r.shape[1] for r in raw] == [5, 4, 3]  # at OS 8
  on_grid = [corner_resize(r, (5, 5)) for r in raw]
  np.testing.assert_allclose(out['logits'], corner_resize(np.maximum.reduce(on_grid), (33, 33)), atol=1e-4)
  for got, want in zip(out['scale_logits'], on_grid):
    np.testing.assert_allclose(got, corner_resize(want, (33, 33)), atol=1e-4)
  # Upsampling each scale first (msc_fuse_at='input') is another function.
  each_upsampled = np.maximum.reduce([corner_resize(r, (33, 33)) for r in raw])
  np.testing.assert_allclose(other['logits'], each_upsampled, atol=1e-4)
  assert not np.allclose(other['logits'], out['logits'], atol=1e-3)


def test_without_upsample_logits_the_training_outputs_stay_on_the_logit_grid():
  config = v2_msc_config('logits')
  config.train.upsample_logits = False
  model = build_model(config, train=True)
  x = jax.random.normal(jax.random.key(0), (2, 33, 33, 3))
  variables = jax.eval_shape(model.init, {'params': jax.random.key(1), 'dropout': jax.random.key(2)}, x)
  out = jax.eval_shape(lambda v: model.apply(v, x, mutable=['batch_stats'],
                                             rngs={'dropout': jax.random.key(3)})[0], variables)
  assert out['logits'].shape == (2, 5, 5, 6)
  assert [s.shape for s in out['scale_logits']] == [(2, 5, 5, 6)] * 3
  assert build_model(config, train=False).upsample_logits  # evaluation always upsamples
