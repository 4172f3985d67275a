"""The command line: python -m deeplab_jax.convert --source=... --kind=... --config=... --workdir=...

See the package docstring; --help lists the flags.
"""
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from deeplab_jax import cli  # noqa: E402
from deeplab_jax.convert.kinds import KINDS  # noqa: E402
from deeplab_jax.convert.workdir import convert  # noqa: E402


def define_flags():
  """The command line's flags; defined only when run as a program, so importing this module defines
  nothing."""
  config_flags.DEFINE_config_file('config', None, 'Config of the model to convert into, e.g. '
                                  'configs/pretrained/torchvision_deeplabv3.py:resnet101.',
                                  lock_config=True)
  flags.DEFINE_string('source', None, 'Local checkpoint: a PyTorch .pth/.pt state_dict or .safetensors, '
                      'or (tf_deeplab kinds) a TF1 checkpoint: its prefix (model.ckpt), .index or '
                      '.data-* file, or the extracted model-zoo tarball folder.')
  flags.DEFINE_enum('kind', None, list(KINDS), 'The model the checkpoint is from.')
  flags.DEFINE_string('workdir', None, 'Run folder to write checkpoints/0 and converted/ into.')
  flags.DEFINE_bool('allow_partial', False, 'Convert even when checkpoint keys are unused or model '
                    'variables unprovided (those keep their initialisation).')
  flags.mark_flags_as_required(['config', 'source', 'kind', 'workdir'])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = cli.load_config()
  f = flags.FLAGS
  convert(config, f.source, f.kind, f.workdir, f.allow_partial)


if __name__ == '__main__':
  define_flags()
  cli.run(main)
