"""The docstring examples (>>>) of every package module run, so they can't go stale."""
import doctest
import importlib
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'deeplab_jax')


def modules_with_examples() -> list[str]:
  found = []
  for folder, _, files in os.walk(PACKAGE):
    for name in sorted(files):
      path = os.path.join(folder, name)
      if name.endswith('.py') and '>>>' in open(path).read():
        relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-len('.py')]
        found.append(relative.replace(os.sep, '.'))
  return sorted(found)


def test_the_package_has_examples():
  assert 'deeplab_jax.models.layers' in modules_with_examples()


@pytest.mark.parametrize('module', modules_with_examples())
def test_examples(module):
  result = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
  assert result.attempted > 0 and result.failed == 0
