"""What every command-line tool of the package shares: flag parsing, config loading and running a
main function, each reporting a user's mistake in one line (exit status 2) instead of a traceback."""
import sys
from typing import Callable

from absl import app, flags
import ml_collections

from deeplab_jax.errors import UserError


def parse_flags(argv):
  """absl's parser (pass as app.run's flags_parser); a bad flag or config override exits with status 2."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, ValueError, TypeError) as e:
    message = (str(e).splitlines() or [type(e).__name__])[0].strip('"\'')
    if ' ' not in message:  # ml_collections reports an unknown field by its bare name
      message = f'unknown config field {message!r}'
  print(f'error: bad flags: {message}\nPass --help for the flags; config fields are in configs/base.py.',
        file=sys.stderr)
  sys.exit(2)


def load_config(flag_name: str = 'config') -> ml_collections.ConfigDict:
  """The config of a config_flags flag; a file that fails to load or run raises UserError naming it."""
  config_file = flags.FLAGS[flag_name].config_filename
  try:
    config = flags.FLAGS[flag_name].value
    config.keys()  # a config file that failed to load raises its error on first use
  except UserError:
    raise
  except Exception as e:  # the config file itself failed to load or run
    raise UserError(f'Cannot load config file {config_file}: {type(e).__name__}: {e}') from e
  return config


def run(main: Callable[[list[str]], None], argv: list[str] | None = None) -> None:
  """app.run(main) with parse_flags (on argv, default sys.argv); a UserError raised by main prints
  'error: ...' and exits 2."""

  def guarded(argv):
    try:
      main(argv)
    except UserError as e:
      print(f'error: {e}', file=sys.stderr, flush=True)
      sys.exit(2)

  app.run(guarded, argv=argv, flags_parser=parse_flags)
