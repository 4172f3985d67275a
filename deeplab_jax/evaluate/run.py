"""The --mode=eval, predict and export entry points: restore a trained run's variables, then act.

Each restores only params and BatchNorm statistics from WORKDIR/checkpoints (config.eval.step, or the
latest) and builds the inference model at the eval output stride, so a run trained at OS 16 is used
at OS 8 by --config.model.eval_output_stride=8.
"""
import os

import jax
import ml_collections

from deeplab_jax import checkpoint, sharding
from deeplab_jax.data import datasets, normalization, pipeline
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import evaluator, export, inference, predict
from deeplab_jax.models.deeplab import build_model


def _restore(config: ml_collections.ConfigDict, workdir: str, mesh, log) -> tuple[dict, int]:
  directory = os.path.join(workdir, 'checkpoints')
  variables, step = checkpoint.read_variables(directory, step=config.eval.step, config=config,
                                              sharding=sharding.replicated(mesh))
  log(f'Restored params and batch statistics of step {step} from {directory}')
  return variables, step


def _settings(config: ml_collections.ConfigDict) -> list[tuple[inference.Setting, str]]:
  """(setting, file suffix) for config.eval's own setting, then each of eval.extra_settings.

  Only the plain setting at the training output stride (what training's own evaluation computes) is
  written without a suffix; any other gets '_os<N>_<setting>', so no result overwrites another.
  """
  output_stride = evaluator.eval_output_stride(config)
  settings = [evaluator.config_setting(config)]
  settings += [inference.parse_setting(s, settings[0].corner_aligned) for s in config.eval.extra_settings]
  plain = lambda s: s.is_plain and output_stride == config.model.output_stride  # noqa: E731
  return [(s, '' if plain(s) else f'_os{output_stride}_{s.tag}') for s in settings]


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, log=print) -> list[dict]:
  """Evaluates a checkpoint on config.data.eval_split under every configured inference setting.

  Writes WORKDIR/eval/<split>_step<N>[_os<N>_<setting>].json, pictures and TensorBoard; returns the
  results.
  """
  mesh = sharding.make_mesh()
  variables, step = _restore(config, workdir, mesh, log)
  _, split = datasets.load_splits(config.data, log)
  shard = pipeline.Shard(jax.process_index(), jax.process_count())
  all_results = []
  for setting, suffix in _settings(config):
    results = evaluator.evaluate(variables, split, config, mesh, shard, log, setting=setting)
    path = evaluator.write_results(workdir, split.name, step, results, suffix=suffix)
    log(evaluator.format_results(results))
    log(f'Wrote {path}')
    all_results.append(results)
  return all_results


def inference_model(config: ml_collections.ConfigDict):
  """The DeepLab module of config at the eval output stride, for inference."""
  return build_model(config, train=False, output_stride=evaluator.eval_output_stride(config))


def restore_for_inference(config: ml_collections.ConfigDict, workdir: str, log=print) -> tuple[dict, int]:
  """(variables on the first local device, step) of config.eval.step (0: the latest) in workdir."""
  return _restore(config, workdir, sharding.make_mesh(jax.local_devices()[:1]), log)


def make_probs_fn(config: ml_collections.ConfigDict, variables: dict) -> predict.ProbsFn:
  """predict's probability function of config: eval.scales/flip, model.eval_output_stride, crf."""
  mean, std = normalization.mean_std(config.data)
  return predict.make_probs_fn(inference_model(config), variables, evaluator.config_setting(config),
                               crf_params=evaluator.config_crf(config), mean=mean, std=std)


def predict_images(config: ml_collections.ConfigDict, workdir: str, log=print) -> list[str]:
  """Label PNGs + overlays of config.predict.input in config.predict.output_dir (or WORKDIR/predict)."""
  paths = predict.list_inputs(config.predict.input)
  predict.check_options(config)
  variables, _ = restore_for_inference(config, workdir, log)  # one image at a time: one device
  if config.crf.enabled:
    log(f'Dense CRF on: {evaluator.config_crf(config)}')
  out_dir = config.predict.output_dir or os.path.join(workdir, 'predict')
  written = predict.predict_files(make_probs_fn(config, variables), paths, out_dir, config, log)
  if not written:
    raise UserError(f'None of the {len(paths)} file(s) of {config.predict.input} is a readable image '
                    '(warnings above); nothing was written.')
  log(f'Wrote {len(written)} label PNG(s) and overlays to {out_dir} '
      f'({len(paths) - len(written)} file(s) skipped)')
  return written


def export_model(config: ml_collections.ConfigDict, workdir: str, log=print) -> str:
  """Serializes the inference function with its weights (jax.export, or ONNX for a path ending in
  .onnx) and returns the file's path; the metadata goes to PATH.json."""
  e = config.export
  height, width = export.input_size(config)
  if e.output not in export.OUTPUTS:
    raise UserError(f'Unknown export output {e.output!r} (config export.output); known: {export.OUTPUTS}.')
  if not (height and width):  # 'taps' atrous convs compare sides with rates, which symbolic sides defeat
    config = config.copy_and_resolve_references()
    config.model.atrous_impl = 'dilation'
  variables, step = restore_for_inference(config, workdir, log)
  infer = export.inference_function(inference_model(config), variables,
                                    *normalization.mean_std(config.data), evaluator.config_setting(config),
                                    e.output)
  path = e.path or export.default_path(workdir, config, step)
  if path.endswith('.onnx'):
    export.save_onnx(infer, path, height, width, e.batch_size, export.metadata(config, step))
    log(f'Exported ONNX [{e.batch_size or "B"}, {height}, {width}, 3] -> {e.output} to {path} '
        f'({export.metadata_path(path)})')
    return path
  exported = export.export(infer, height, width, e.batch_size, e.platforms,
                           config.predict.pad_multiple, bool(config.model.upsample_align_corners))
  path = export.save(exported, path, export.metadata(config, step))
  log(f'Exported {exported.in_avals[0]} -> {exported.out_avals[0]} for {exported.platforms} to {path} '
      f'(normalisation {config.data.normalization} inside; {export.metadata_path(path)})')
  return path
