"""Shared pieces of the fault tests: the tiny run they train, and reading its results back."""
import os

from deeplab_jax import checkpoint
from tests.train.helpers import fixed_config

BAD_FILE = 'train/images/gone_bad.jpg'  # the file the multi-process fault test's worker reports bad


def loop_config(root: str, num_steps: int = 6):
  """fixed_config's model on 16 small synthetic images: a run of a few seconds, checkpoints every 2."""
  config = fixed_config()
  config.data.root = root
  config.data.synthetic.update(num_train=16, num_val=4, min_size=40, max_size=60, seed=1)
  config.data.eval_size = 64
  config.train.num_steps = num_steps
  config.train.log_every = 1
  config.train.checkpoint_every = 2
  return config


def final_params(workdir: str) -> dict:
  return checkpoint.read_variables(os.path.join(workdir, 'checkpoints'))[0]
