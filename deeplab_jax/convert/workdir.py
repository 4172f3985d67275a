"""Converting a file into a run folder W:

  W/checkpoints/0: a training checkpoint at step 0 (the whole TrainState, fresh optimizer state), which
    --mode=eval/predict/export restore like any trained run's, and --mode=train resumes from, so that
    training in W fine-tunes the converted weights.
  W/converted: the converted variables alone, an Orbax PyTree checkpoint (StandardCheckpointer) of
    {'params': ..., 'batch_stats': ...} with the config's model's tree structure and float32 leaves;
    read it with `ocp.StandardCheckpointer().restore(path, abstract)` (partial restores work) to
    initialise another run.
  W/converted.json: the source, the kind, and the variables left at their initialisation.
  W/config.json: the config the variables belong to.
"""
import json
import os

from etils import epath

from deeplab_jax import paths
from deeplab_jax.convert import kinds
from deeplab_jax.convert.match import convert_variables
from deeplab_jax.errors import UserError


def write_workdir(config, variables: dict, workdir: str, report: dict, log=print) -> None:
  """W/checkpoints/0 (a TrainState), W/converted (the variables), W/converted.json, W/config.json."""
  import jax
  import orbax.checkpoint as ocp

  from deeplab_jax import checkpoint
  from deeplab_jax.train import optimizer
  from deeplab_jax.train.state import TrainState
  checkpoints = paths.absolute(os.path.join(workdir, 'checkpoints'))
  if epath.Path(checkpoints).is_dir() and any(epath.Path(checkpoints).iterdir()):
    raise UserError(f'{checkpoints} already holds checkpoints; convert into a fresh --workdir so '
                    'converted weights never mix with a trained run.')
  checkpoint.prepare_workdir(workdir, config)
  variables = jax.tree.map(jax.numpy.asarray, variables)
  state = TrainState.create(apply_fn=None, params=variables['params'], tx=optimizer.create_optimizer(
      config.train), batch_stats=variables['batch_stats'])
  checkpointer = checkpoint.Checkpointer(checkpoints, config.train.keep_checkpoints)
  checkpointer.save(0, state, force=True)
  checkpointer.close()
  with ocp.StandardCheckpointer() as standalone:
    standalone.save(paths.absolute(os.path.join(workdir, 'converted')), variables, force=True)
  epath.Path(workdir, 'converted.json').write_text(json.dumps(report, indent=1))
  log(f'Wrote {checkpoints}/0 (--mode=eval/predict/train with --workdir={workdir}) and '
      f'{os.path.join(workdir, "converted")}')


def convert(config, source: str, kind: str, workdir: str, allow_partial: bool = False,
            log=print) -> dict:
  """Converts `source` and writes it into workdir (see the module docstring); returns the variables."""
  entry = kinds.get(kind)  # an unknown kind is named before the file is read
  variables, conversion = convert_variables(config, entry.load(source), kind, allow_partial, log, source)
  report = {'source': paths.absolute(source), 'kind': kind, 'loaded': len(conversion.values),
            'unused_keys': conversion.unmatched, 'dropped_first_class': conversion.dropped_first_class,
            'left_at_initialisation': conversion.missing + conversion.reinit}
  write_workdir(config, variables, workdir, report, log)
  return variables
