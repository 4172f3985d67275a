"""Host memory for XLA:CPU: glibc's malloc on transparent huge pages, set as the process starts.

XLA:CPU allocates each execution's temporary buffer anew (94 MiB for the quickstart train step, 5.5 GiB
for v3+ ResNet-101 at 512², batch 4), and glibc maps a block that large with mmap and unmaps it when
it is freed. So every step touches all of its temporary memory as fresh 4 KiB pages: 1.6 million page
faults per step in that ResNet-101 step, a third of the process's CPU time spent in the kernel. The
glibc tunable glibc.malloc.hugetlb=1 (glibc >= 2.35) makes malloc ask for transparent huge pages
(madvise), 2 MiB each: the faults fall ~350x and the quickstart train step goes from 60 to 44 ms
(BENCHMARKS.md). Tunables are read only when a process starts, so `reexec_with_huge_pages` runs the
current command again, once, with the tunable set. DEEPLAB_JAX_HUGE_PAGES=0 turns this off.
"""
import os
import platform
import sys

TUNABLE = 'glibc.malloc.hugetlb'
_THP_MODE = '/sys/kernel/mm/transparent_hugepage/enabled'


def _glibc_with_hugetlb() -> bool:
  """Linux with glibc >= 2.35 (the first with the hugetlb tunable)."""
  libc, version = platform.libc_ver()
  if not sys.platform.startswith('linux') or libc != 'glibc':
    return False
  try:
    major, minor = (int(part) for part in version.split('.')[:2])
  except ValueError:
    return False
  return (major, minor) >= (2, 35)


def _thp_available() -> bool:
  """The kernel gives transparent huge pages to a process that asks (mode 'always' or 'madvise')."""
  try:
    with open(_THP_MODE) as f:
      return '[never]' not in f.read()
  except OSError:
    return False


def huge_page_environment(environ: dict) -> dict | None:
  """environ with glibc.malloc.hugetlb=1 added to GLIBC_TUNABLES, or None where nothing is to change:
  the tunable is set already (by the user or by an earlier re-exec), this is turned off, or the host
  has no glibc that knows it or no transparent huge pages."""
  tunables = environ.get('GLIBC_TUNABLES', '')
  if TUNABLE in tunables or environ.get('DEEPLAB_JAX_HUGE_PAGES') == '0':
    return None
  if not (_glibc_with_hugetlb() and _thp_available()):
    return None
  return dict(environ, GLIBC_TUNABLES=':'.join(filter(None, [tunables, f'{TUNABLE}=1'])))


def reexec_with_huge_pages() -> None:
  """Replaces this process by the same command (same interpreter, options and arguments, same pid)
  with huge pages on; returns without doing anything where huge_page_environment has nothing to set.
  Call it first thing in an entry point, before JAX or TensorFlow start threads."""
  environ = huge_page_environment(dict(os.environ))
  if environ is None:
    return
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environ)
