"""The evaluation pass and --mode=eval: plain-setting equivalence, OS 8 of an OS 16 run, outputs."""
import glob
import json
import os

import jax
import numpy as np
from PIL import Image
import pytest

from deeplab_jax import checkpoint, sharding
from deeplab_jax.data import pipeline, voc
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import evaluator, run
from tests.conftest import tiny_config
from tests.evaluate.conftest import save_checkpoint


def voc_config(root):
  config = tiny_config(root)
  config.data.dataset, config.data.label_dir, config.data.train_split = 'voc', 'SegmentationClass', 'train'
  config.data.expect_counts = False  # a miniature in the VOC layout, not the full 1,464 / 1,449
  return config


def numpy_confusion(model, variables, batches, num_classes: int) -> np.ndarray:
  """Reference: the confusion [C, C] of the argmax of the model's logits on batches, counted with numpy
  (label 255 left out)."""
  apply, confusion = jax.jit(model.apply), 0
  for b in batches:
    predictions = np.asarray(apply(variables, b['image'])['logits']).argmax(-1)
    keep = b['label'] != 255
    confusion = confusion + np.bincount(b['label'][keep] * num_classes + predictions[keep],
                                        minlength=num_classes ** 2).reshape(num_classes, num_classes)
  return confusion


def labelled_pixels(split) -> int:
  """Pixels of the split's label PNGs that are not ignore (255)."""
  return sum(int((np.asarray(Image.open(p)) != 255).sum()) for p in split.label_paths)


def test_single_scale_no_flip_equals_plain_eval(tiny, synthetic_root):
  config, model, variables = tiny
  config.data.root = synthetic_root
  split = voc.read_split(synthetic_root, 'val', 'SegmentationClass')
  mesh = sharding.make_mesh()
  variables = jax.device_put(variables, sharding.replicated(mesh))
  results = evaluator.evaluate(variables, split, config, mesh, log=lambda _: None)

  batches = pipeline.eval_batches(split, config.data, config.eval.batch_size)
  np.testing.assert_array_equal(results['confusion_matrix'],
                                numpy_confusion(model, variables, batches, config.data.num_classes))
  # Padding (to eval_size, and the batch filler) is excluded: only the label PNGs' own pixels count.
  assert results['num_pixels'] == labelled_pixels(split)
  assert len(results['samples']) == min(config.eval.num_images, len(split))
  h, w = np.asarray(Image.open(split.label_paths[0])).shape
  assert results['samples'][0].shape == (h, 3 * w + 8, 3)
  # Spread over the split, not its first images: the last picture is of the last image.
  h, w = np.asarray(Image.open(split.label_paths[-1])).shape
  assert results['samples'][-1].shape == (h, 3 * w + 8, 3)
  np.testing.assert_array_equal(results['samples'][-1][:, :w], np.asarray(Image.open(split.image_paths[-1])))


def test_batch_padding_evaluates_bucketed_batches_over_the_same_pixels(tiny, synthetic_root):
  """data.eval_padding='batch': the model runs on each batch padded to a bucket of its largest image (at
  most the canvas), the confusion is that of those batches, and every labelled pixel still counts once."""
  config, model, variables = tiny
  config.data.root, config.data.eval_padding = synthetic_root, 'batch'
  config.eval.batch_size, config.predict.pad_multiple = 2, 16
  split = voc.read_split(synthetic_root, 'val')
  mesh = sharding.make_mesh(jax.devices()[:2])
  results = evaluator.evaluate(jax.device_put(variables, sharding.replicated(mesh)), split, config, mesh,
                               log=lambda _: None)
  batches = list(pipeline.eval_batches(split, config.data, config.eval.batch_size,
                                       bucket_sides=evaluator.bucket_sides(config)))
  np.testing.assert_array_equal(results['confusion_matrix'],
                                numpy_confusion(model, variables, batches, config.data.num_classes))
  assert results['num_pixels'] == labelled_pixels(split)
  seen = [b['label'].shape[1:] for b in batches]
  # Sides of 60-90 px in units of 16 (+ 1, corner-aligned): 4 -> 65, 5-6 -> 97, capped by the 96 canvas.
  shapes = [np.asarray(Image.open(p)).shape for p in split.label_paths]
  for k, side in enumerate(seen):
    largest = np.max(shapes[2 * k:2 * k + 2], axis=0)
    assert side == tuple(65 if d <= 65 else 96 for d in largest)


def test_eval_mode_at_output_stride_8_of_a_run_trained_at_16(tiny, tmp_path, synthetic_root):
  _, _, variables = tiny
  config, workdir = voc_config(synthetic_root), str(tmp_path)
  assert config.model.output_stride == 16
  save_checkpoint(workdir, config, variables, 3)
  restored, step = checkpoint.read_variables(os.path.join(workdir, 'checkpoints'), config=config)
  assert step == 3
  jax.tree.map(np.testing.assert_array_equal, restored, variables)

  config.model.eval_output_stride = 8
  config.eval.extra_settings = ('0.5+flip',)
  lines = []
  results = run.evaluate_checkpoint(config, workdir, log=lines.append)
  assert [r['output_stride'] for r in results] == [8, 8]
  assert [(r['scales'], r['flip']) for r in results] == [([1.0], False), ([0.5], True)]
  assert not os.path.exists(os.path.join(workdir, 'eval', 'val_step3.json'))
  for name in ('val_step3_os8_s1', 'val_step3_os8_s0.5_flip'):  # training's val_step3.json kept
    with open(os.path.join(workdir, 'eval', name + '.json')) as f:
      saved = json.load(f)
    assert saved['step'] == 3 and saved['output_stride'] == 8 and 0 <= saved['miou'] <= 1
    assert set(saved['per_class_iou']) == set(config.data.class_names)
    for kind in ('confusion', 'examples'):
      assert Image.open(os.path.join(workdir, 'eval', f'{name}_{kind}.png')).mode == 'RGB'
  assert glob.glob(os.path.join(workdir, 'eval', 'events.out.tfevents.*'))
  text = '\n'.join(lines)
  assert 'Restored params and batch statistics of step 3' in text
  assert 'triangle' in text and 'mean class accuracy' in text and 'output stride 8' in text

  config.eval.step = 5
  with pytest.raises(UserError, match=r'No checkpoint for step 5 .* has steps \[3\]'):
    run.evaluate_checkpoint(config, workdir, log=lines.append)


def test_eval_mode_without_checkpoints_says_what_to_do(tmp_path, synthetic_root):
  with pytest.raises(UserError, match='Train first'):
    run.evaluate_checkpoint(voc_config(synthetic_root), str(tmp_path), log=lambda _: None)
