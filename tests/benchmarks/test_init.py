"""deeplab_jax.benchmarks: its docstring names every benchmark and its command; they import together."""
import importlib
import os
import re

import deeplab_jax.benchmarks as package

MODULES = sorted(name[:-3] for name in os.listdir(os.path.dirname(package.__file__))
                 if name.endswith('.py') and name != '__init__.py')


def test_docstring_lists_each_benchmark_with_its_command():
  assert MODULES == ['atrous', 'conv_ops', 'crf', 'peer_train', 'pipeline', 'profile', 'save_memory', 'soak',
                     'step', 'torch_step']
  listed = re.findall(r'^    (\w+) ', package.__doc__, re.MULTILINE)
  commands = re.findall(r'python -m deeplab_jax\.benchmarks\.(\w+)', package.__doc__)
  assert listed == commands == ['step', 'profile', 'torch_step', 'conv_ops', 'atrous', 'crf', 'pipeline',
                                'peer_train', 'soak', 'save_memory']


def test_benchmarks_import_side_by_side():
  # Their flags (--batch, --size, --config, ...) overlap: defined at import, they would clash.
  modules = [importlib.import_module(f'deeplab_jax.benchmarks.{name}') for name in MODULES]
  assert all(callable(module.main) for module in modules)
