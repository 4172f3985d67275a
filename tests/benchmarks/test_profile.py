"""The step profile attributes the traced time to the compiled program's ops, kinds and layers."""
import jax
from jax import lax
import jax.numpy as jnp

from deeplab_jax.benchmarks import profile
from tests.conftest import tiny_config


def test_instructions_name_convs_dots_and_the_rest():
  def f(x, w, v):
    y = lax.conv_general_dilated(x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return jnp.tanh(y).reshape(-1, 4) @ v
  args = (jnp.ones((1, 6, 6, 3)), jnp.ones((3, 3, 3, 4)), jnp.ones((4, 5)))
  table = profile.instructions(jax.jit(f).lower(*args).compile().as_text())
  kinds = {entry['kind'] for entry in table.values()}
  assert {'conv', 'dot'} <= kinds
  assert any(entry['kind'] == 'conv' and entry['shape'].startswith('f32[1,6,6,4]')
             for entry in table.values())


def test_a_train_step_profile_covers_the_model_forward_and_backward():
  config = tiny_config()
  result, wall = profile.profile(config, batch_size=8, size=48, steps=2, mode='train', top=400)
  assert wall > 0 and result['total_ms'] > 0
  assert abs(sum(ms for _, ms in result['kinds']) - result['total_ms']) < 1e-6 * result['total_ms'] + 1e-9
  kinds = dict(result['kinds'])
  assert kinds.get('conv', 0) + kinds.get('dot', 0) > 0
  layers = [layer for *_, layer in result['ops']]
  assert any(layer.startswith('backbone/') for layer in layers)
  assert any(layer.startswith('B backbone/') for layer in layers)  # the backward pass, marked
  text = profile.format_breakdown(result, wall)
  assert '| conv |' in text or '| dot |' in text
