"""One evaluation pass over a split: confusion matrix -> metrics -> WORKDIR/eval/<split>_step<N>.json.

The pass runs the config's inference setting (eval.scales, eval.flip) at the eval output stride, sums
one confusion matrix over the whole split (padding and the ignore label excluded), and keeps the first
few (image, label, prediction) examples for pictures. With config.crf.enabled the same pass also
refines each batch's probabilities with the dense CRF (DeepLab v1/v2) and sums a second confusion
matrix, reported under 'crf' next to the plain results. `write_results` writes the JSON, a
confusion-matrix heatmap PNG, a PNG of the examples, and the same to TensorBoard under WORKDIR/eval.
"""
import dataclasses
import functools
import json
import os
from typing import Callable

from clu import metric_writers
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
from PIL import Image

from deeplab_jax import sharding
from deeplab_jax.data import normalization, palette, pipeline
from deeplab_jax.data.split import Split
from deeplab_jax.evaluate import inference, metrics, visualize
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.ops import crf

SCALARS = ('miou', 'pixel_accuracy', 'mean_class_accuracy', 'frequency_weighted_iou')


def eval_output_stride(config: ml_collections.ConfigDict) -> int:
  return config.model.eval_output_stride or config.model.output_stride


def config_setting(config: ml_collections.ConfigDict) -> inference.Setting:
  """The inference setting of config.eval (scales, flip), resizing as config.model does."""
  return inference.Setting(tuple(float(s) for s in config.eval.scales), bool(config.eval.flip),
                           bool(config.model.upsample_align_corners))


def config_crf(config: ml_collections.ConfigDict) -> crf.CRFParams | None:
  """The CRF settings of config.crf, or None when it is off."""
  return crf.from_config(config.crf) if config.crf.enabled else None


# (probs [B, H, W, C], normalised images [B, H, W, 3], labels [B, H, W]) -> refined probs.
Refiner = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


def crf_refiner(mesh: Mesh, params: crf.CRFParams, data: ml_collections.ConfigDict) -> Refiner:
  """Dense CRF on each device's own images (shard_map: lax.map over a split batch would gather it).

  Eval padding (the mean pixel, labelled ignore) is left out of the CRF; a real pixel is mistaken for
  it only if it is both ignore-labelled and exactly the mean colour, and metrics skip it anyway.
  """
  def refine(probs, images, labels):
    valid = ~(inference.is_padding(images) & (labels == data.ignore_label))
    return inference.crf_probabilities(probs, images, valid, *normalization.mean_std(data), params)

  split = P(sharding.DATA_AXIS)
  return jax.shard_map(refine, mesh=mesh, in_specs=(split, split, split), out_specs=split,
                       check_vma=False)


def eval_step(variables: dict, batch: dict, *, model, setting: inference.Setting, num_classes: int,
              ignore_label: int, refine: Refiner | None = None) -> tuple[jax.Array, jax.Array]:
  """(confusions [K, C, C], predictions [B, H, W] uint8/int32) of one batch under `setting`.

  K = 1, or 2 with `refine`: the second confusion is of the refined probabilities. The predictions
  are the unrefined ones.
  """
  probs = inference.probabilities(inference.model_logits(model), variables, batch['image'], setting)
  outputs = [probs] if refine is None else [probs, refine(probs, batch['image'], batch['label'])]
  dtype = jnp.uint8 if num_classes <= 256 else jnp.int32
  predictions = [jnp.argmax(p, -1).astype(dtype) for p in outputs]
  confusions = jnp.stack([metrics.confusion_matrix(batch['label'], p.astype(jnp.int32), num_classes,
                                                   ignore_label) for p in predictions])
  return confusions, predictions[0]


def jit_eval_step(mesh: Mesh, model, setting: inference.Setting, num_classes: int, ignore_label: int,
                  refine: Refiner | None = None):
  step = functools.partial(eval_step, model=model, setting=setting, num_classes=num_classes,
                           ignore_label=ignore_label, refine=refine)
  # Predictions come back replicated: only the first batch's are read, and uint8 is cheap to gather.
  return jax.jit(step, in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                 out_shardings=(sharding.replicated(mesh), sharding.replicated(mesh)),
                 compiler_options=crf.compiler_options() if refine is not None else None)


def evaluate(variables: dict, split: Split, config: ml_collections.ConfigDict, mesh: Mesh,
             shard: pipeline.Shard = pipeline.Shard(), log=print, *,
             setting: inference.Setting | None = None, output_stride: int | None = None,
             crf_params: crf.CRFParams | None | str = 'config') -> dict:
  """Metrics of `variables` on the whole split (see metrics.summarize) and pictures of examples.

  Returns:
    metrics.summarize's dict plus split, num_images, output_stride, scales, flip, confusion_matrix and
    'samples': (image | label | prediction) RGB pictures of config.eval.num_images images spread evenly
    over the split (its first and last included: video splits such as CamVid's hold runs of near-equal
    frames)
    (write_results draws them and leaves them out of the JSON). With a CRF, also 'crf': the same
    metrics and confusion_matrix after the CRF, and 'params', the CRF settings used.

  Args:
    setting: scales and flip; default: config.eval.scales and config.eval.flip.
    output_stride: default: config.model.eval_output_stride, else the training one.
    crf_params: dense CRF settings, None for no CRF; default ('config'): config.crf when enabled.
  """
  data = config.data
  setting = setting or config_setting(config)
  output_stride = output_stride or eval_output_stride(config)
  crf_params = config_crf(config) if crf_params == 'config' else crf_params
  model = build_model(config, train=False, output_stride=output_stride)
  refine = crf_refiner(mesh, crf_params, data) if crf_params else None
  step_fn = jit_eval_step(mesh, model, setting, data.num_classes, data.ignore_label, refine)
  confusion = np.zeros((1 + bool(refine), data.num_classes, data.num_classes), np.int64)
  total, samples = pipeline.num_eval_batches(split, config.eval.batch_size), []
  wanted = set(np.linspace(0, len(split) - 1, min(config.eval.num_images, len(split))).round().astype(int))
  for i, batch in enumerate(pipeline.eval_batches(split, data, config.eval.batch_size, shard,
                                                  include_index=True)):
    index = batch.pop('index')
    batch_confusion, predictions = step_fn(variables, sharding.global_batch(batch, mesh))
    confusion += np.asarray(batch_confusion)
    rows = [j for j, position in enumerate(index) if position in wanted]
    if rows:
      samples += _triples({k: v[rows] for k, v in batch.items()}, np.asarray(predictions)[rows], len(rows),
                          data)
    if (i + 1) % 20 == 0 or i + 1 == total:
      log(f'  eval {split.name} ({setting.tag}, OS {output_stride}{", CRF" if refine else ""}): '
          f'batch {i + 1}/{total}')
  results = metrics.summarize(confusion[0], data.class_names)
  results.update(split=split.name, num_images=len(split), output_stride=output_stride,
                 scales=list(setting.scales), flip=setting.flip, confusion_matrix=confusion[0].tolist(),
                 samples=samples)
  if refine:
    results['crf'] = dict(metrics.summarize(confusion[1], data.class_names),
                          confusion_matrix=confusion[1].tolist(), params=dataclasses.asdict(crf_params))
  return results


def _triples(batch: dict, predictions: np.ndarray, count: int, data) -> list[np.ndarray]:
  """(image | label | prediction) pictures of the first `count` examples of a local batch."""
  mean, std = normalization.mean_std(data)
  colors = palette.for_config(data)
  return [visualize.eval_triple(batch['image'][i], batch['label'][i], predictions[i], mean, std,
                                data.ignore_label, colors)
          for i in range(min(count, len(batch['image'])))]


def _save_png(path: str, picture: np.ndarray) -> None:
  Image.fromarray(picture).save(path)


def write_pictures(workdir: str, name: str, results: dict) -> dict:
  """Writes WORKDIR/eval/<name>_confusion.png (and _examples.png); returns them by TensorBoard tag."""
  names = list(results['per_class_iou'])
  pictures = {'confusion': visualize.confusion_heatmap(np.asarray(results['confusion_matrix']), names)}
  if results.get('samples'):
    pictures['examples'] = _stack_rows(results['samples'])
  for kind, picture in pictures.items():
    _save_png(os.path.join(workdir, 'eval', f'{name}_{kind}.png'), picture)
  return pictures


def _stack_rows(pictures: list[np.ndarray], gap: int = 4) -> np.ndarray:
  """RGB pictures of any sizes stacked top to bottom on white."""
  width = max(p.shape[1] for p in pictures)
  rows = [np.pad(p, ((0, gap), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in pictures]
  return np.concatenate(rows)[:-gap]


def _write_tensorboard(workdir: str, step: int, prefix: str, results: dict, pictures: dict) -> None:
  """Scalars and pictures to the TensorBoard run WORKDIR/eval (next to the training run in WORKDIR)."""
  writer = metric_writers.create_default_writer(os.path.join(workdir, 'eval'), just_logging=False)
  scalars = {f'{prefix}/{k}': results[k] for k in SCALARS}
  scalars.update({f'{prefix}/crf_{k}': results['crf'][k] for k in SCALARS if 'crf' in results})
  writer.write_scalars(step, scalars)
  writer.write_images(step, {f'{prefix}/{k}': v[None] for k, v in pictures.items()})
  writer.close()


def write_results(workdir: str, split: str, step: int, results: dict, *, suffix: str = '',
                  tensorboard: bool = True) -> str:
  """Writes WORKDIR/eval/<split>_step<N><suffix>.json, its pictures and TensorBoard; returns the path.

  Args:
    suffix: tells several inference settings of one checkpoint apart, e.g. '_s0.5-1-1.5_flip'.
    tensorboard: also write the scalars and pictures to the TensorBoard run WORKDIR/eval.
  """
  name = f'{split}_step{step}{suffix}'
  path = os.path.join(workdir, 'eval', name + '.json')
  if jax.process_index() == 0:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(dict({k: v for k, v in results.items() if k != 'samples'}, step=step), f, indent=1)
    pictures = write_pictures(workdir, name, results)
    if tensorboard:
      _write_tensorboard(workdir, step, f'eval_{split}{suffix}', results, pictures)
  return path


def format_results(results: dict) -> str:
  """A per-class IoU / accuracy table and the summary lines."""
  lines = [f'{"class":<16} {"IoU":>7} {"acc":>7} {"pixels":>12}']
  accuracy = results.get('per_class_accuracy', {})
  for name, iou in results['per_class_iou'].items():
    shown = [' ' * 4 + 'n/a' if v is None else f'{100 * v:7.2f}' for v in (iou, accuracy.get(name))]
    lines.append(f'{name:<16} {shown[0]} {shown[1]} {results["pixels_per_class"][name]:>12}')
  setting = inference.Setting(tuple(results.get('scales', (1.0,))), results.get('flip', False))
  lines.append(f'mIoU {100 * results["miou"]:.2f}  pixel accuracy {100 * results["pixel_accuracy"]:.2f}'
               f'  mean class accuracy {100 * results.get("mean_class_accuracy", float("nan")):.2f}'
               f'  fw IoU {100 * results.get("frequency_weighted_iou", float("nan")):.2f}')
  lines.append(f'({results["num_images"]} images, {results["split"]}, output stride '
               f'{results["output_stride"]}, scales {list(setting.scales)}, flip {setting.flip})')
  if 'crf' in results:
    lines.append(_crf_line(results))
  return '\n'.join(lines)


def _crf_line(results: dict) -> str:
  """'with dense CRF: mIoU .. (+..)  pixel accuracy .. (+..)  (settings)'."""
  refined = results['crf']
  shown = [f'{name} {100 * refined[k]:.2f} ({100 * (refined[k] - results[k]):+.2f})'
           for name, k in (('mIoU', 'miou'), ('pixel accuracy', 'pixel_accuracy'))]
  settings = ', '.join(f'{k} {v}' for k, v in refined.get('params', {}).items())
  return f'with dense CRF: {"  ".join(shown)}  ({settings})'

