"""Test setup: 8 host CPU devices (set before JAX is imported) and small shared fixtures."""
import os
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory):
  """A small synthetic VOC-layout dataset shared by the data tests."""
  from deeplab_jax.data import synthetic
  root = str(tmp_path_factory.mktemp('synthetic'))
  synthetic.generate(root, num_train=12, num_val=5, min_size=60, max_size=90, seed=3, log=lambda _: None)
  return root


def tiny_config(root: str = '/nonexistent'):
  """The quickstart config shrunk to a few-second model: ResNet (1,1,1,3) at width 8, crop 48."""
  from configs import quickstart
  config = quickstart.get_config()
  config.data.root = root
  config.data.crop_size = 48
  config.data.eval_size = 96
  config.model.resnet.width = 8
  config.model.aspp_features = 16
  config.train.batch_size = 8
  config.eval.batch_size = 8
  return config
