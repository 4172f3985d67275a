"""One evaluation pass over a split: confusion matrix -> metrics -> WORKDIR/eval/<split>_step<N>.json.

The pass runs the config's inference setting (eval.scales, eval.flip) at the eval output stride, sums
one confusion matrix over the whole split (padding and the ignore label excluded; with
data.eval_protocol 'resize' or 'slide', image by image at each label's own resolution), and keeps the first
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
from etils import epath
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
from PIL import Image

from deeplab_jax import sharding
from deeplab_jax.data import normalization, palette, pipeline, sizes
from deeplab_jax.data.split import Split
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference, metrics, predict, visualize
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
  if data.eval_protocol != 'pad':
    confusion, samples = _evaluate_each_image(variables, split, config, model, setting, crf_params,
                                              shard, log)
    return _results(confusion, samples, split, data, setting, output_stride, crf_params)
  if data.eval_padding == 'batch' and jax.process_count() > 1:
    raise UserError("data.eval_padding='batch' pads each host's batch to its own largest image, so "
                    "hosts would disagree on the shape; use 'canvas' on several hosts.")
  refine = crf_refiner(mesh, crf_params, data) if crf_params else None
  step_fn = jit_eval_step(mesh, model, setting, data.num_classes, data.ignore_label, refine)
  confusion = np.zeros((1 + bool(refine), data.num_classes, data.num_classes), np.int64)
  total, samples = pipeline.num_eval_batches(split, config.eval.batch_size), []
  wanted = set(np.linspace(0, len(split) - 1, min(config.eval.num_images, len(split))).round().astype(int))
  buckets = bucket_sides(config) if data.eval_padding == 'batch' else None
  for i, batch in enumerate(pipeline.eval_batches(split, data, config.eval.batch_size, shard,
                                                  include_index=True, bucket_sides=buckets)):
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
  return _results(confusion, samples, split, data, setting, output_stride, crf_params if refine else None)


def bucket_sides(config: ml_collections.ConfigDict) -> tuple[np.ndarray, np.ndarray]:
  """data.eval_padding='batch': per axis, the side a batch whose largest image has side d (0..canvas)
  is padded to: predict.padded_side's bucket, at most the canvas (data.eval_size), never below d. A
  split of many sizes costs a few compiles."""
  canvas = sizes.height_width(config.data.eval_size, 'data.eval_size')
  aligned = bool(config.model.upsample_align_corners)
  return tuple(np.array([max(d, min(predict.padded_side(d, config.predict.pad_multiple, aligned), c))
                         for d in range(c + 1)]) for c in canvas)


def _results(confusion: np.ndarray, samples: list, split, data, setting: inference.Setting,
             output_stride: int, crf_params: crf.CRFParams | None) -> dict:
  """evaluate()'s dict from the summed confusion matrices [K, C, C] (K = 2 with a CRF)."""
  results = metrics.summarize(confusion[0], data.class_names)
  results.update(split=split.name, num_images=len(split), output_stride=output_stride,
                 scales=list(setting.scales), flip=setting.flip, confusion_matrix=confusion[0].tolist(),
                 samples=samples, protocol=data.eval_protocol)
  if crf_params:
    results['crf'] = dict(metrics.summarize(confusion[1], data.class_names),
                          confusion_matrix=confusion[1].tolist(), params=dataclasses.asdict(crf_params))
  return results


PROTOCOLS = ('pad', 'resize', 'slide')


def _evaluate_each_image(variables: dict, split, config: ml_collections.ConfigDict, model,
                         setting: inference.Setting, crf_params: crf.CRFParams | None,
                         shard: pipeline.Shard, log) -> tuple[np.ndarray, list]:
  """(confusions [K, C, C], pictures) of data.eval_protocol 'resize' or 'slide', image by image.

  Every prediction is made at the original resolution of its label, which the metrics count. The
  model runs config.eval.batch_size canvases ('resize': images; 'slide': one image's windows) at once.
  """
  data = config.data
  if data.eval_protocol not in PROTOCOLS:
    raise UserError(f'data.eval_protocol is {data.eval_protocol!r}; expected one of {PROTOCOLS}.')
  if jax.process_count() > 1:
    raise UserError(f"data.eval_protocol={data.eval_protocol!r} evaluates image by image on one host; "
                    "use 'pad' (with data.eval_size as large as the largest image) on several hosts.")
  mean, std = normalization.mean_std(data)
  # With a CRF, one model pass per canvas gives both: [H, W, 2C], the plain probabilities then the refined.
  probs_fn = predict.make_probs_fn(model, variables, setting, crf_params=crf_params, mean=mean, std=std,
                                   with_plain=True)
  n, kinds = data.num_classes, 2 if crf_params else 1
  confusion, samples = np.zeros((kinds, n, n), np.int64), []
  wanted = set(np.linspace(0, len(split) - 1, min(config.eval.num_images, len(split))).round().astype(int))
  examples = ((normalization.normalize(b['image'][0], data), b['label'][0].astype(np.int64),
               int(b['index'][0])) for b in pipeline.whole_examples(split, data, shard))
  group = 1 if data.eval_protocol == 'slide' else config.eval.batch_size
  count = 0
  for chunk in inference.groups(examples, group):
    images = [image for image, _, _ in chunk]
    for (image, label, index), probs in zip(chunk, whole_image_probabilities(probs_fn, images, config)):
      keep = label != data.ignore_label
      for k in range(kinds):
        prediction = np.argmax(probs[..., k * n:(k + 1) * n], -1)
        confusion[k] += np.bincount(label[keep] * n + prediction[keep], minlength=n * n).reshape(n, n)
        if k == 0 and index in wanted:
          samples.append(visualize.eval_triple(image, label, prediction, mean, std, data.ignore_label,
                                               palette.for_config(data)))
    before, count = count, count + len(chunk)
    if count // 100 > before // 100 or count == len(split):
      log(f'  eval {split.name} ({setting.tag}, {data.eval_protocol}): image {count}/{len(split)}')
  return confusion, samples


def whole_image_probabilities(probs_fn, images: list[np.ndarray], config: ml_collections.ConfigDict):
  """Probabilities [H, W, C] of normalised images [H, W, 3] (any sizes) by data.eval_protocol 'resize'
  or 'slide', yielded image by image.

  'resize': each scaled by min(canvas_h / H, canvas_w / W) (up or down, keeping the ratio), padded with
  the mean pixel to data.eval_size, run config.eval.batch_size at a time, and the probabilities of the
  scaled image resized back to H x W (bilinear, with the model's corner alignment). 'slide': windows of
  data.eval_size (height x width) that overlap by data.eval_overlap along each side (an image within one
  window is padded whole), config.eval.batch_size windows at a time, averaged.
  """
  data, batch = config.data, config.eval.batch_size
  height, width = sizes.height_width(data.eval_size, 'data.eval_size')
  if data.eval_protocol == 'slide':
    return (inference.tiled_probabilities(probs_fn, image, (height, width), float(data.eval_overlap), batch)
            for image in images)
  aligned = bool(config.model.upsample_align_corners)
  scaled = []
  for image in images:
    h, w = image.shape[:2]
    scale = min(height / h, width / w)
    scaled.append((min(height, max(1, round(h * scale))), min(width, max(1, round(w * scale)))))
  canvases = (np.pad(_resize(image, (sh, sw), aligned), ((0, height - sh), (0, width - sw), (0, 0)))
              for image, (sh, sw) in zip(images, scaled))
  return (_resize(probs[:sh, :sw], image.shape[:2], aligned) for image, (sh, sw), probs
          in zip(images, scaled, inference.batched_probabilities(probs_fn, canvases, batch)))


def _resize(array: np.ndarray, size: tuple[int, int], aligned: bool) -> np.ndarray:
  """Bilinear resize of [H, W, C] float32 to size, corner-aligned as the model's upsampling if aligned."""
  if tuple(array.shape[:2]) == tuple(size):
    return np.asarray(array, np.float32)
  import tensorflow as tf
  resized = tf.compat.v1.image.resize_bilinear(np.asarray(array, np.float32)[None], size,
                                               align_corners=aligned, half_pixel_centers=not aligned)
  return resized.numpy()[0]


def _triples(batch: dict, predictions: np.ndarray, count: int, data) -> list[np.ndarray]:
  """(image | label | prediction) pictures of the first `count` examples of a local batch."""
  mean, std = normalization.mean_std(data)
  colors = palette.for_config(data)
  return [visualize.eval_triple(batch['image'][i], batch['label'][i], predictions[i], mean, std,
                                data.ignore_label, colors)
          for i in range(min(count, len(batch['image'])))]


def _save_png(path: str, picture: np.ndarray) -> None:
  with epath.Path(path).open('wb') as f:  # local or gs:// workdirs
    Image.fromarray(picture).save(f, 'PNG')


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
    epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
    epath.Path(path).write_text(json.dumps(dict({k: v for k, v in results.items() if k != 'samples'},
                                                step=step), indent=1))
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

