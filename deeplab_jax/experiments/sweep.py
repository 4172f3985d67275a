"""Sweep runner, the command behind every experiments/<name>/README.md:

    python -m deeplab_jax.experiments.sweep --config=FILE --sweep=experiments/<name>/sweep.py --workdir=W

Every override of every point is checked against its config before anything starts. --launch=local
trains and evaluates the points one after another, each in W/<point>/ by a `deeplab_jax.main`
subprocess (a fresh JAX per point, and a killed point leaves an ordinary resumable run folder); points
whose final eval JSON exists are skipped, points with checkpoints resume. --launch=print prints one
launch command per point for a TPU pod slice or a cluster instead. --config.x=y overrides apply to
every point.
"""
import json
import os
import shlex
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags  # noqa: E402
from etils import epath  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from deeplab_jax import cli  # noqa: E402
from deeplab_jax.errors import UserError  # noqa: E402
from deeplab_jax.experiments import points as points_lib  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Base config file, e.g. configs/v3_voc.py.',
                                lock_config=True)
_SWEEP = flags.DEFINE_string('sweep', None, 'Sweep file with get_sweep(), e.g. '
                             'experiments/output_stride/sweep.py.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'Sweep folder; point P runs in WORKDIR/P.')
_LAUNCH = flags.DEFINE_enum('launch', 'local', ['local', 'print'],
                            'local: run the points here, one after another. print: print one launch '
                            'command per point (TPU pod slice and per-host forms).')
_TPU = flags.DEFINE_string('tpu', 'TPU_NAME', '--launch=print: the TPU VM name for gcloud.')
_ZONE = flags.DEFINE_string('zone', 'ZONE', '--launch=print: the TPU VM zone for gcloud.')
_REMOTE_DIR = flags.DEFINE_string('remote_dir', 'deeplab_jax', '--launch=print: the repository '
                                  'checkout on every host (commands cd there first).')
flags.mark_flags_as_required(['config', 'sweep', 'workdir'])


def base_overrides(argv: list[str]) -> list[str]:
  """The --config.x=y arguments of the sweep's own command line, forwarded to every point."""
  overrides = []
  for arg in argv[1:]:
    if arg.startswith(('--config.', '--noconfig.')):
      if '=' not in arg and not arg.startswith('--noconfig.'):
        raise UserError(f'Write base overrides as --config.x=y (got {arg!r} without "=").')
      overrides.append(arg)
  return overrides


def point_status(point: points_lib.Point, workdir: str) -> tuple[str, int]:
  """('finished', N), ('resume', step of the latest checkpoint) or ('start', 0) for the point's folder."""
  run_dir = os.path.join(workdir, point.name)
  final = os.path.join(run_dir, 'eval', f'{point.config.data.eval_split}_step'
                       f'{point.config.train.num_steps}.json')
  if epath.Path(final).is_file():
    return 'finished', point.config.train.num_steps
  checkpoints = epath.Path(run_dir, 'checkpoints')
  names = [p.name for p in checkpoints.iterdir()] if checkpoints.is_dir() else []
  # Orbax names unfinished saves '<step>.orbax-checkpoint-tmp-*': only all-digit folders are complete.
  steps = [int(d) for d in names if d.isdigit()]
  return ('resume', max(steps)) if steps else ('start', 0)


def main_command(point: points_lib.Point, run_dir: str) -> list[str]:
  return ['python', '-m', 'deeplab_jax.main', *point.args, f'--workdir={run_dir}']


def describe(point: points_lib.Point) -> str:
  parts = [f'{k}={v!r}' for k, v in point.overrides.items()]
  return f'{point.config_file}' + (' with ' + ', '.join(parts) if parts else ' as is')


def write_manifest(workdir: str, sweep_file: str, config_file: str, base: list[str],
                   points: list[points_lib.Point]) -> None:
  """WORKDIR/sweep.json: what the notebooks need to lay the results out (points, overrides, files)."""
  epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  manifest = {'sweep': sweep_file, 'config': config_file, 'base_overrides': base,
              'points': [{'name': p.name, 'config': p.config_file, 'overrides': p.overrides,
                          'args': list(p.args)} for p in points]}
  epath.Path(workdir, 'sweep.json').write_text(json.dumps(manifest, indent=1))


def run_local(points: list[points_lib.Point], workdir: str, log=print) -> None:
  """Runs each unfinished point in WORKDIR/<point> through deeplab_jax.main; stops at a failure."""
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  for k, point in enumerate(points, 1):
    status, step = point_status(point, workdir)
    head = f'[sweep] point {k}/{len(points)} {point.name}:'
    if status == 'finished':
      log(f'{head} skipped (finished: eval at step {step} exists)', flush=True)
      continue
    log(f'{head} ' + (f'resumed from the checkpoint at step {step}' if status == 'resume' else
                      'started') + f' -- {describe(point)}', flush=True)
    run_dir = os.path.join(workdir, point.name)
    command = [sys.executable] + main_command(point, run_dir)[1:]
    code = subprocess.run(command, env=env, check=False).returncode
    if code != 0:
      raise UserError(f'Sweep point {point.name!r} exited with status {code}; its log is above. Fix '
                      'the cause and rerun the same command: finished points are skipped and this '
                      'one resumes from its last checkpoint.')
  log(f'[sweep] all {len(points)} points finished in {workdir}', flush=True)


def print_commands(points: list[points_lib.Point], workdir: str, log=print) -> None:
  """One TPU-pod command and one per-host command per point; every host runs each point together."""
  log('# Every host of a slice runs the same command together; the hosts join one JAX job through\n'
      '# jax.distributed.initialize() (no arguments needed on Cloud TPU; on other clusters it needs the\n'
      '# coordinator address, process count and process id: main\'s multi-host flags).\n'
      '# Use a --workdir that every host can write (gs://... or a shared file system).')
  for k, point in enumerate(points, 1):
    run_dir = os.path.join(workdir, point.name)
    host = f'cd {shlex.quote(_REMOTE_DIR.value)} && ' + shlex.join(main_command(point, run_dir))
    log(f'\n# point {k}/{len(points)} {point.name}: {describe(point)}')
    log(shlex.join(['gcloud', 'compute', 'tpus', 'tpu-vm', 'ssh', _TPU.value, f'--zone={_ZONE.value}',
                    '--worker=all', f'--command={host}']))
    log(f'# per host: {host}')


def main(argv):
  del argv
  base = base_overrides(sys.argv)
  config_file = flags.FLAGS['config'].config_filename
  cli.load_config()
  points = points_lib.resolve_sweep(_SWEEP.value, config_file, base)
  print(f'[sweep] {_SWEEP.value}: {len(points)} points validated against {config_file}', flush=True)
  if _LAUNCH.value == 'print':
    print_commands(points, _WORKDIR.value)
    return
  write_manifest(_WORKDIR.value, _SWEEP.value, config_file, base, points)
  run_local(points, _WORKDIR.value)


if __name__ == '__main__':
  cli.run(main)
