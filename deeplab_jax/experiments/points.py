"""Sweep points: load a sweep file, check every override against its config, turn points into flags.

A sweep file (experiments/<name>/sweep.py) defines `get_sweep()`, returning the points in order: a dict
{name: overrides} or a list of (name, overrides) pairs. Overrides are {dotted config field: value}; the
special key '_config' names another config file for that point (e.g. 'configs/v2_voc.py'), to which the
sweep's command-line base overrides apply as well. A point becomes exactly the command line
`python -m deeplab_jax.main --config=FILE [base overrides] [point overrides] --workdir=W/<name>`, and
validation parses that command line with the same flag machinery as main, so a point that validates is
a point main accepts with the values intended.
"""
import dataclasses
import importlib.util
import os
import re

from absl import flags
import ml_collections
from ml_collections import config_flags

from deeplab_jax.errors import UserError

CONFIG_KEY = '_config'
_NAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.+-]*$')  # becomes a folder name and a shell word


@dataclasses.dataclass(frozen=True)
class Point:
  """One validated point of a sweep.

  Attributes:
    name: the point's folder name under the sweep workdir.
    config_file: the config file the point starts from.
    overrides: {dotted field: value} applied on top of config_file and the base overrides.
    args: the --config=... and --config.x=y command-line arguments that produce `config`.
    config: the resolved config main will run.
  """
  name: str
  config_file: str
  overrides: dict
  args: tuple
  config: ml_collections.ConfigDict


def load_sweep_module(path: str):
  """Imports a sweep file by path; UserError when it is missing or has no get_sweep()."""
  if not os.path.isfile(path):
    raise UserError(f'Sweep file {path} does not exist. Pass --sweep=experiments/<name>/sweep.py.')
  spec = importlib.util.spec_from_file_location(f'sweep_{abs(hash(path))}', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # the user's file failed to import
    raise UserError(f'Cannot load sweep file {path}: {type(e).__name__}: {e}') from e
  if not callable(getattr(module, 'get_sweep', None)):
    raise UserError(f'Sweep file {path} has no get_sweep() function returning the points.')
  return module


def named_points(sweep, path: str) -> list[tuple[str, dict]]:
  """get_sweep()'s value as [(name, overrides)], checking names are unique folder names."""
  items = list(sweep.items()) if isinstance(sweep, dict) else list(sweep)
  if not items:
    raise UserError(f'Sweep file {path}: get_sweep() returned no points.')
  seen = set()
  for item in items:
    if not (isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], dict)):
      raise UserError(f'Sweep file {path}: each point must be (name, {{field: value}}), got {item!r}.')
    name = item[0]
    if not isinstance(name, str) or not _NAME.match(name):
      raise UserError(f'Sweep file {path}: point name {name!r} must be letters, digits, _ . + - '
                      '(it becomes a folder name).')
    if name in seen:
      raise UserError(f'Sweep file {path}: point name {name!r} appears twice.')
    seen.add(name)
  return [(name, dict(overrides)) for name, overrides in items]


def flag_value(value) -> str:
  """The command-line text config_flags parses back into `value` (tuples as Python literals)."""
  if isinstance(value, (tuple, list)):
    return repr(tuple(value))
  return str(value)


def parse_config(config_file: str, args: list[str]) -> ml_collections.ConfigDict:
  """The config main builds from `--config=config_file *args`, parsed by a private flag registry."""
  argv = ['deeplab_jax.main', f'--config={config_file}', *args]
  registry = flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, 'config file', flag_values=registry,
                                  lock_config=True, sys_argv=argv)
  try:
    registry(argv)
    config = registry.config
    config.keys()  # a config file that failed to load raises its error on first use
  except Exception as e:  # a bad file or a bad base override; say which, without a traceback
    message = (str(e).splitlines() or [type(e).__name__])[0]
    raise UserError(f'Cannot build the config from {config_file} {" ".join(args)}: {message}') from e
  return config


def _check_field(config: ml_collections.ConfigDict, key: str, value, where: str) -> None:
  """UserError unless `key` names a field of config and `value` fits its type."""
  node, parts = config, key.split('.')
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      known = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      parent = '.'.join(parts[:depth]) or 'the config'
      raise UserError(f'{where}: unknown config field {key!r} ({parent} has no {part!r}; its fields: '
                      f'{", ".join(known)}). Fields are defined in configs/base.py.')
    if depth < len(parts) - 1:
      node = node[part]
  current = node[parts[-1]]
  if isinstance(current, ml_collections.ConfigDict):
    raise UserError(f'{where}: {key!r} is a group of fields, not a field; override its fields.')
  if not _fits(current, value):
    raise UserError(f'{where}: {key}={value!r} is a {type(value).__name__}, but the config field '
                    f'holds a {type(current).__name__} ({current!r}).')


def _fits(current, value) -> bool:
  """Whether value can replace current: same type, an int for a float, any tuple for a tuple."""
  if isinstance(current, bool) or isinstance(value, bool):
    return isinstance(current, bool) and isinstance(value, bool)
  if isinstance(current, float):
    return isinstance(value, (int, float))
  if isinstance(current, (tuple, list)):
    return isinstance(value, (tuple, list))
  return current is None or isinstance(value, type(current))


def _same(a, b) -> bool:
  if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
    return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
  return a == b and type(a) in (type(b), int, float) and type(b) in (type(a), int, float)


def _get(config: ml_collections.ConfigDict, key: str):
  for part in key.split('.'):
    config = config[part]
  return config


def resolve_point(name: str, overrides: dict, config_file: str, base_args: list[str]) -> Point:
  """Validates one point's overrides and returns it with its command-line args and resolved config."""
  where = f'Sweep point {name!r}'
  point_file = overrides.pop(CONFIG_KEY, config_file)
  if not isinstance(point_file, str) or not os.path.isfile(point_file):
    raise UserError(f'{where}: {CONFIG_KEY}={point_file!r} is not a config file (paths are relative to '
                    'the repository root, e.g. configs/v2_voc.py).')
  base = parse_config(point_file, base_args)
  for key, value in overrides.items():
    _check_field(base, key, value, where)
  args = list(base_args) + [f'--config.{k}={flag_value(v)}' for k, v in overrides.items()]
  config = parse_config(point_file, args)
  for key, value in overrides.items():
    if not _same(_get(config, key), value):  # the command line would not carry the value faithfully
      raise UserError(f'{where}: {key}={value!r} comes back as {_get(config, key)!r} from the command '
                      'line; use a value config_flags can parse.')
  return Point(name, point_file, overrides, tuple([f'--config={point_file}'] + args), config)


def resolve_sweep(sweep_file: str, config_file: str, base_args: list[str]) -> list[Point]:
  """Every point of the sweep file, all validated before any is returned."""
  module = load_sweep_module(sweep_file)
  return [resolve_point(name, overrides, config_file, base_args)
          for name, overrides in named_points(module.get_sweep(), sweep_file)]
