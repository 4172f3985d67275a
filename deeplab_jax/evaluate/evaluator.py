"""One evaluation pass over a split: confusion matrix -> metrics -> WORKDIR/eval/<split>_step<N>.json."""
import json
import os

import jax
import ml_collections
import numpy as np
from jax.sharding import Mesh

from deeplab_jax.data import pipeline
from deeplab_jax.data.voc import Split
from deeplab_jax.evaluate import metrics
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.train import steps


def eval_output_stride(config: ml_collections.ConfigDict) -> int:
  return config.model.eval_output_stride or config.model.output_stride


def evaluate(variables: dict, split: Split, config: ml_collections.ConfigDict, mesh: Mesh,
             shard: pipeline.Shard = pipeline.Shard(), log=print) -> dict:
  """Metrics of `variables` on the whole split at the config's eval output stride."""
  data = config.data
  model = build_model(config.model, data.num_classes, train=False,
                      output_stride=eval_output_stride(config))
  step_fn = steps.jit_eval_step(mesh, model, data.num_classes, data.ignore_label)
  confusion = np.zeros((data.num_classes, data.num_classes), np.int64)
  total = pipeline.num_eval_batches(split, config.eval.batch_size)
  for i, batch in enumerate(pipeline.eval_batches(split, data, config.eval.batch_size, shard)):
    confusion += np.asarray(step_fn(variables, steps.global_batch(batch, mesh)))
    if (i + 1) % 20 == 0 or i + 1 == total:
      log(f'  eval {split.name}: batch {i + 1}/{total}')
  results = metrics.summarize(confusion, data.class_names)
  results.update(split=split.name, num_images=len(split), output_stride=eval_output_stride(config),
                 confusion_matrix=confusion.tolist())
  return results


def write_results(workdir: str, split: str, step: int, results: dict) -> str:
  """Writes WORKDIR/eval/<split>_step<N>.json and returns its path."""
  path = os.path.join(workdir, 'eval', f'{split}_step{step}.json')
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(dict(results, step=step), f, indent=1)
  return path


def format_results(results: dict) -> str:
  """A per-class IoU table and the summary line."""
  lines = [f'{"class":<16} {"IoU":>7} {"pixels":>12}']
  for name, iou in results['per_class_iou'].items():
    shown = '    n/a' if iou is None else f'{100 * iou:7.2f}'
    lines.append(f'{name:<16} {shown} {results["pixels_per_class"][name]:>12}')
  lines.append(f'mIoU {100 * results["miou"]:.2f}  pixel accuracy {100 * results["pixel_accuracy"]:.2f}'
               f'  ({results["num_images"]} images, {results["split"]}, output stride '
               f'{results["output_stride"]})')
  return '\n'.join(lines)
