"""Labels as users have them: explicit label maps, reduce_zero_label, 1-bit, grey-RGB and colour-coded
masks, and the tf.data graph decoding the common formats exactly as the Python reader does."""
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from deeplab_jax.data import labels, palette, reading, transforms
from deeplab_jax.errors import UserError
from tests.data import miniatures


def table_of(mapping: dict, rest=labels.INVALID) -> np.ndarray:
  table = np.full(256, rest, np.int16)
  for value, cls in mapping.items():
    table[value] = cls
  return table


@pytest.mark.parametrize('text, expected', [
    ('0:0,255:1', table_of({0: 0, 255: 1})),
    ('1-150:0-149', table_of({v: v - 1 for v in range(1, 151)})),
    ('10-20:3, 0:ignore', table_of({0: 255, **{v: 3 for v in range(10, 21)}})),
    ('0:0,1:1,*:ignore', table_of({0: 0, 1: 1}, rest=255)),
])
def test_explicit_label_maps(text, expected):
  np.testing.assert_array_equal(labels.label_table(text, 150, 255), expected)


@pytest.mark.parametrize('text, message', [
    ('0:0,255', r"entry '255' of '0:0,255': expected stored:class"),
    ('0:0,0:1', 'stored value 0 is mapped twice'),
    ('0:5', r'class 5 is outside 0..1 \(data.num_classes 2\)'),
    ('1-3:0-1', '3 stored values onto 2 classes'),
    ('300:1', r"'300' is not a value or a range a-b within 0..255"),
    ('bogus', r"Unknown label map 'bogus'.*'0:0,255:1'"),
])
def test_bad_label_maps_name_the_entry(text, message):
  with pytest.raises(UserError, match=message):
    labels.label_table(text, 2, 255)


def test_reduce_zero_label_and_ade20k():
  table = labels.label_table('reduce_zero_label', 3, 255)
  assert table[0] == 255 and table[1:4].tolist() == [0, 1, 2] and table[4] == labels.INVALID
  assert table[255] == 255  # stored ignore stays ignore
  np.testing.assert_array_equal(labels.label_table('ade20k', 150, 255),
                                labels.label_table('reduce_zero_label', 150, 255))


def test_a_mapping_leaving_values_unmapped_names_file_and_values():
  with pytest.raises(reading.BadExample, match=r'x.png: label values \[7\] are neither a class.*'
                                               r"valid stored values: 0, 255.*'7:ignore'"):
    reading.map_label(np.array([[0, 7]], np.uint8), labels.label_table('0:0,255:1', 2, 255), 'x.png')


def png_bytes(array, mode=None) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array, mode).save(buffer, 'PNG')
  return buffer.getvalue()


def test_one_bit_and_grey_rgb_masks_are_indices():
  mask = miniatures.stripes((0, 1, 0, 1))
  one_bit = png_bytes(mask.astype(bool))
  assert Image.open(io.BytesIO(one_bit)).mode == '1'
  np.testing.assert_array_equal(reading.read_raw_label('m.png', one_bit), mask)
  grey = miniatures.stripes((0, 3, 255))
  rgb = png_bytes(np.repeat(grey[..., None], 3, -1), 'RGB')
  np.testing.assert_array_equal(reading.read_raw_label('m.png', rgb), grey)


def test_colour_masks_decode_through_the_palette():
  colors = np.array([[0, 0, 0], [250, 10, 10], [10, 250, 10], [10, 250, 10]], np.uint8)
  values = miniatures.stripes((0, 1, 2, 1))
  content = png_bytes(colors[values], 'RGB')
  np.testing.assert_array_equal(reading.read_raw_label('m.png', content, colors), values)
  full = palette.for_config(type('Data', (), {'palette': colors[:3].tolist()}))
  np.testing.assert_array_equal(reading.read_raw_label('m.png', content, full), values)
  with pytest.raises(reading.BadExample, match=r'm.png: label is a colour-coded RGB mask; .*data.palette'):
    reading.read_raw_label('m.png', content)
  with pytest.raises(reading.BadExample, match=r'm.png: .*1 colour\(s\) not in data.palette, e.g. '
                                               r'\[\(250, 10, 10\)\]'):
    reading.read_raw_label('m.png', content, colors[[0, 2]])


def _graph_load(image_bytes, label_bytes, table):
  out = transforms.load_bytes(tf.constant('i'), tf.constant('l'), tf.constant(image_bytes),
                              tf.constant(label_bytes), table, 255)
  decodable, _ = transforms.graph_decodable(tf.constant(image_bytes), tf.constant(label_bytes))
  return [o.numpy() for o in out], bool(decodable)


def _jpeg(array) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, 'JPEG', quality=90)
  return buffer.getvalue()


@pytest.mark.parametrize('kind', ['palette', 'small_palette', 'grey', 'png_image'])
def test_graph_decoding_equals_the_python_reader(kind):
  """JPEG/PNG images and grey/palette PNG labels are decoded by TF, and to the same arrays as Pillow."""
  rng = np.random.default_rng(0)
  image = (rng.integers(0, 256, (40, 56, 3)) // 3 + np.mgrid[0:40, 0:56][1][..., None] * 3).astype(np.uint8)
  values = miniatures.stripes((0, 3, 1, 255, 2))
  if kind == 'small_palette':  # 4 colours: Pillow writes a 4-bit palette PNG
    values = miniatures.stripes((0, 3, 1, 2))
  label = png_bytes(values, 'L') if kind == 'grey' else None
  if label is None:
    png = Image.fromarray(values, 'P')
    png.putpalette(palette.voc_palette(256 if kind == 'palette' else 4).reshape(-1).tolist())
    buffer = io.BytesIO()
    png.save(buffer, 'PNG')
    label = buffer.getvalue()
  image_bytes = png_bytes(image, 'RGB') if kind == 'png_image' else _jpeg(image)
  table = labels.label_table('identity', 4, 255)
  (got_image, got_label, problem), decodable = _graph_load(image_bytes, label, table)
  want_image, want_label = reading.load_example('i', 'l', table, None, image_bytes, label)
  assert decodable and problem == b''
  np.testing.assert_array_equal(got_label, want_label)
  np.testing.assert_array_equal(got_image, want_image)


def test_formats_tf_cannot_read_take_the_python_path():
  image = _jpeg(miniatures.image(0))
  table = labels.label_table('identity', 2, 255)
  mask = miniatures.stripes((0, 1))
  for label in (png_bytes(mask.astype(bool)), png_bytes(np.repeat(mask[..., None], 3, -1), 'RGB')):
    (_, got, problem), decodable = _graph_load(image, label, table)
    assert not decodable and problem == b''
    np.testing.assert_array_equal(got, mask)
  truncated = image[:len(image) // 2]
  assert not transforms.graph_decodable(tf.constant(truncated), tf.constant(png_bytes(mask, 'L')))[0]
  with pytest.raises((tf.errors.OpError, reading.BadExample), match='^i: corrupt or unreadable image'):
    _graph_load(truncated, png_bytes(mask, 'L'), table)


def test_the_pipeline_decodes_voc_layout_data_in_the_graph(synthetic_root, monkeypatch):
  """JPEG images with palette PNG labels (VOC's and the synthetic set's formats) never reach Python."""
  from deeplab_jax.data import pipeline, voc
  from tests.conftest import tiny_config
  calls = []
  python_load = transforms._python_load
  monkeypatch.setattr(transforms, '_python_load', lambda *args: calls.append(1) or python_load(*args))
  split = voc.read_split(synthetic_root, 'val')
  batch = next(pipeline.eval_batches(split, tiny_config(synthetic_root).data, global_batch=5))
  assert calls == [] and (batch['label'] < 6).sum() > 0
