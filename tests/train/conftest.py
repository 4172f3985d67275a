"""Train tests compile the same step in several tests: share compilations through a session cache."""
import jax
import pytest


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """XLA's persistent cache keyed by the program, so equal programs from separate `jit`s compile once."""
  jax.config.update('jax_compilation_cache_dir', str(tmp_path_factory.mktemp('xla_cache')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  yield
  jax.config.update('jax_compilation_cache_dir', None)
