"""The config a run was made with, read back from WORKDIR/config.json, and checked when training resumes.

`--mode=eval/predict/export --workdir=W` without --config loads W/config.json through `get_config`
(a config file, `--config=deeplab_jax/run_config.py:W`, so `--config.x=y` overrides still apply), and
`deeplab_jax.Segmenter.from_workdir` reads it with `load`. `check_resume` stops `--mode=train` from
silently continuing a run under another config.
"""
import json
import os
import time

from etils import epath
import ml_collections

from deeplab_jax import paths
from deeplab_jax.errors import UserError

CONFIG_FILE = 'config.json'
CHANGES_FILE = 'config_changes.json'
# Fields that may change between the runs of one training: how long it runs, where the data lies,
# and what eval/predict/export do afterwards. Any other change is reported.
FREE_FIELDS = ('train.num_steps', 'data.root', 'data.sbd_root', 'data.num_parallel_calls',
               'data.num_threads', 'eval.', 'predict.', 'export.')
MODES = ('eval', 'predict', 'export')  # the modes that read the stored config without --config


def path(workdir: str) -> str:
  return os.path.join(workdir, CONFIG_FILE)


def _tuples(value):
  """JSON lists back to the tuples configs hold."""
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _merge(config: ml_collections.ConfigDict, stored: dict) -> None:
  """stored's values into config (base.py's tree, so override types stay those of base.py)."""
  for key, value in stored.items():
    current = config.get(key) if key in config else None
    if isinstance(value, dict) and isinstance(current, ml_collections.ConfigDict):
      _merge(current, value)
      continue
    value = _tuples(value)
    if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    try:
      config[key] = value
    except TypeError:  # the stored type differs from base.py's (a placeholder field): keep stored
      del config[key]
      config[key] = value


def load(workdir: str) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a ConfigDict over configs/base.py's fields (UserError if there is none)."""
  file = path(workdir)
  if not epath.Path(file).exists():
    raise UserError(f'{file} does not exist, so the run\'s config is unknown. Pass --workdir of a run '
                    'made by --mode=train or deeplab_jax.convert, or pass --config too.')
  try:
    stored = json.loads(epath.Path(file).read_text())
  except paths.io_errors() + (ValueError,) as e:
    raise UserError(f'Cannot read {file}: {type(e).__name__}: {e}. Pass --config.') from e
  config = _base_config()
  _merge(config, stored)
  return config


def _base_config() -> ml_collections.ConfigDict:
  """configs/base.py's tree; empty for the package without the repository's configs/."""
  try:
    from configs import base
  except ImportError:
    return ml_collections.ConfigDict()
  return base.get_config()


def get_config(workdir: str) -> ml_collections.ConfigDict:
  """The config-file entry point: `--config=deeplab_jax/run_config.py:WORKDIR`."""
  return load(workdir)


def _flag_value(argv: list[str], name: str) -> str | None:
  """The value of --name=X or --name X in argv (the last one), or None."""
  value = None
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      value = arg.split('=', 1)[1]
    elif arg == f'--{name}' and i + 1 < len(argv):
      value = argv[i + 1]
  return value


def with_stored_config(argv: list[str]) -> list[str]:
  """argv, plus --config=<this file>:WORKDIR when an eval/predict/export command has no --config."""
  if any(a == '--config' or a.startswith('--config=') for a in argv[1:]):
    return argv
  workdir, mode = _flag_value(argv[1:], 'workdir'), _flag_value(argv[1:], 'mode')
  if not workdir or mode not in MODES:
    return argv
  # First: the --config.x=y overrides that follow apply to it.
  return [argv[0], f'--config={os.path.abspath(__file__)}:{workdir}', *argv[1:]]


def _flat(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[prefix + key] = _tuples(value)
  return flat


def differences(stored: dict, config: dict) -> dict:
  """{field: (stored, now)} of the fields that differ, FREE_FIELDS left out.

  A field the stored config lacks (the run was made before the field existed) that now holds
  configs/base.py's default is no change: a new field's default is the behaviour the run had.
  """
  old, new = _flat(stored), _flat(config)
  defaults = _flat(json.loads(_base_config().to_json()))
  changed = {}
  for field in sorted(set(old) | set(new)):
    if any(field == f or (f.endswith('.') and field.startswith(f)) for f in FREE_FIELDS):
      continue
    if field not in old and field in defaults and new.get(field) == defaults[field]:
      continue
    if old.get(field, '<absent>') != new.get(field, '<absent>'):
      changed[field] = (old.get(field, '<absent>'), new.get(field, '<absent>'))
  return changed


def _has_trained_checkpoint(workdir: str) -> bool:
  """Whether WORKDIR/checkpoints holds a step after 0 (step 0 alone: converted or initial weights,
  which a fine-tuning config is free to differ from)."""
  directory = epath.Path(workdir, 'checkpoints')
  return directory.is_dir() and any(p.name.isdigit() and int(p.name) > 0 for p in directory.iterdir())


def check_resume(workdir: str, config: ml_collections.ConfigDict, accept: bool = False,
                 log=print) -> None:
  """Raises UserError listing the changed fields when training would resume under another config.

  With accept, the change is appended to WORKDIR/config_changes.json instead (the new config then
  becomes WORKDIR/config.json, written by training).
  """
  if not (_has_trained_checkpoint(workdir) and epath.Path(path(workdir)).is_file()):
    return
  stored = json.loads(epath.Path(path(workdir)).read_text())
  changed = differences(stored, json.loads(config.to_json()))
  if not changed:
    return
  lines = '\n'.join(f'  {k}: {old!r} -> {new!r}' for k, (old, new) in changed.items())
  if not accept:
    raise UserError(f'{workdir} holds a run trained with another config; {len(changed)} field(s) differ '
                    f'from {path(workdir)}:\n{lines}\nResume with the stored config (leave those '
                    'overrides out), use a fresh --workdir, or pass --accept_config_change to go on '
                    'under the new one (recorded in ' + os.path.join(workdir, CHANGES_FILE) + ').')
  _record(workdir, changed)
  log(f'Resuming under a changed config (recorded in {os.path.join(workdir, CHANGES_FILE)}):\n{lines}')


def _record(workdir: str, changed: dict) -> None:
  """Appends changed to WORKDIR/config_changes.json through a temporary file: never half-written."""
  file = epath.Path(workdir, CHANGES_FILE)
  history = json.loads(file.read_text()) if file.is_file() else []
  history.append({'time': time.strftime('%Y-%m-%dT%H:%M:%S'),
                  'changed': {k: {'stored': old, 'now': new} for k, (old, new) in changed.items()}})
  temporary = epath.Path(workdir, CHANGES_FILE + '.tmp')
  temporary.write_text(json.dumps(history, indent=1, default=str))
  temporary.replace(file)
