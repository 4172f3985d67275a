"""Reading a sweep's workdir for the notebooks: final evals, TensorBoard scalars, paper-style tables.

A sweep workdir W (written by `python -m deeplab_jax.experiments.sweep`) holds W/sweep.json (the points
and their overrides) and one run folder per point: W/<point>/config.json,
W/<point>/eval/<split>_step<N>.json and TensorBoard event files. W may be local or gs:// (etils.epath).
"""
import json
import os

from etils import epath

from deeplab_jax.experiments import points as points_lib

NOT_RUN = 'not run yet'


def load_manifest(workdir: str) -> dict:
  """W/sweep.json; FileNotFoundError naming the command that writes it."""
  path = os.path.join(workdir, 'sweep.json')
  if not epath.Path(path).is_file():
    raise FileNotFoundError(f'{path} does not exist: run python -m deeplab_jax.experiments.sweep '
                            f'--workdir={workdir} ... first (or point SWEEP_WORKDIR at a sweep folder).')
  return json.loads(epath.Path(path).read_text())


def paper_figures(manifest: dict) -> tuple[dict, str]:
  """({point: paper mIoU %}, source) from the sweep file's PAPER and PAPER_SOURCE, if it has them."""
  module = points_lib.load_sweep_module(manifest['sweep'])
  return dict(getattr(module, 'PAPER', {})), getattr(module, 'PAPER_SOURCE', '')


def final_eval(run_dir: str) -> dict | None:
  """The run's evaluation after its last training step (per its config.json), or None if not there."""
  config_path = os.path.join(run_dir, 'config.json')
  if not epath.Path(config_path).is_file():
    return None
  config = json.loads(epath.Path(config_path).read_text())
  name = f'{config["data"]["eval_split"]}_step{config["train"]["num_steps"]}.json'
  path = epath.Path(run_dir, 'eval', name)
  return json.loads(path.read_text()) if path.is_file() else None


def scalars(run_dir: str, tag: str) -> list[tuple[int, float]]:
  """(step, value) of a TensorBoard scalar (e.g. 'train/loss') over all event files in run_dir."""
  from tensorboard.backend.event_processing import event_accumulator
  from tensorboard.util import tensor_util
  points = {}
  for path in sorted(str(p) for p in epath.Path(run_dir).glob('events.out.tfevents.*')):
    events = event_accumulator.EventAccumulator(path, size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    if tag in events.Tags()['tensors']:  # tf.summary (clu's writer) stores scalars as tensors
      for event in events.Tensors(tag):
        points[event.step] = float(tensor_util.make_ndarray(event.tensor_proto))
  return sorted(points.items())


def _varying_keys(points: list[dict]) -> list[str]:
  """The override keys whose value differs between points: the table's setting columns."""
  keys = []
  for point in points:
    for key in [points_lib.CONFIG_KEY] * ('config' in point) + list(point['overrides']):
      if key not in keys:
        keys.append(key)
  value = lambda p, k: p['config'] if k == points_lib.CONFIG_KEY else p['overrides'].get(k)  # noqa: E731
  return [k for k in keys if len({json.dumps(value(p, k)) for p in points}) > 1]


def _cell(value) -> str:
  if isinstance(value, bool):
    return '✓' if value else '-'
  if isinstance(value, list):
    return '(' + ', '.join(str(v) for v in value) + ')'
  if isinstance(value, str) and value.startswith('configs/'):
    return os.path.splitext(os.path.basename(value))[0]
  return '' if value is None else str(value)


def table_rows(workdir: str) -> tuple[list[str], list[list[str]]]:
  """(headers, rows): point, its varying settings, our mIoU %, the paper's, as in the papers' tables."""
  manifest = load_manifest(workdir)
  paper, _ = paper_figures(manifest)
  points = manifest['points']
  keys = _varying_keys(points)
  headers = ['point'] + [k.split('.')[-1] if k != points_lib.CONFIG_KEY else 'config' for k in keys]
  headers += ['mIoU % (ours)', 'mIoU % (paper)']
  rows = []
  for point in points:
    results = final_eval(os.path.join(workdir, point['name']))
    settings = [point['config'] if k == points_lib.CONFIG_KEY else point['overrides'].get(k)
                for k in keys]
    ours = f'{100 * results["miou"]:.2f}' if results else NOT_RUN
    theirs = paper.get(point['name'])
    rows.append([point['name']] + [_cell(v) for v in settings] +
                [ours, '—' if theirs is None else f'{theirs:.2f}'])
  return headers, rows


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
  lines = ['| ' + ' | '.join(headers) + ' |', '|' + '---|' * len(headers)]
  return '\n'.join(lines + ['| ' + ' | '.join(row) + ' |' for row in rows])
