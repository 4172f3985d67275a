"""deeplab_jax.host: the huge-page tunable added once, kept when set, and the re-exec that applies it."""
import os
import subprocess
import sys

import pytest

from deeplab_jax import host


@pytest.fixture
def capable(monkeypatch):
  monkeypatch.setattr(host, '_glibc_with_hugetlb', lambda: True)
  monkeypatch.setattr(host, '_thp_available', lambda: True)


def test_the_tunable_is_added_beside_the_users_own(capable):
  assert host.huge_page_environment({})['GLIBC_TUNABLES'] == 'glibc.malloc.hugetlb=1'
  env = host.huge_page_environment({'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2', 'A': 'b'})
  assert env == {'GLIBC_TUNABLES': 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1', 'A': 'b'}


def test_nothing_changes_when_set_turned_off_or_unsupported(capable, monkeypatch):
  assert host.huge_page_environment({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}) is None
  assert host.huge_page_environment({'DEEPLAB_JAX_HUGE_PAGES': '0'}) is None
  monkeypatch.setattr(host, '_thp_available', lambda: False)
  assert host.huge_page_environment({}) is None


def test_the_reexec_runs_the_same_command_once_with_the_tunable():
  if host.huge_page_environment({}) is None:
    pytest.skip('this host has no glibc >= 2.35 with transparent huge pages')
  code = ('import os, sys; print("start", flush=True); from deeplab_jax import host; '
          'host.reexec_with_huge_pages(); print(os.environ["GLIBC_TUNABLES"], sys.argv[1:])')
  env = {k: v for k, v in os.environ.items() if k not in ('GLIBC_TUNABLES', 'DEEPLAB_JAX_HUGE_PAGES')}
  out = subprocess.run([sys.executable, '-c', code, 'x', '--y=1'], env=env, capture_output=True,
                       text=True, timeout=60, cwd=os.path.dirname(os.path.dirname(host.__file__)))
  assert out.returncode == 0, out.stderr
  assert out.stdout.splitlines() == ['start', 'start', "glibc.malloc.hugetlb=1 ['x', '--y=1']"]
