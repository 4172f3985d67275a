"""How a fresh model's weights are drawn: model.init_scheme.

'deeplab': each module's own initialisers (kaiming-normal fan-out convs, depthwise kernels at unit
  fan-in variance, logits N(0, 0.01)); what every run that starts from ImageNet or converted weights
  overwrites anyway.
'torchvision': torchvision's initialisation of deeplabv3_mobilenet_v3_large (and its ResNets) when
  built with weights=None, which matters for training from scratch:
  * backbone convs: kaiming-normal fan-out (as 'deeplab'), except depthwise kernels, whose fan-out
    PyTorch counts as C * k * k (it ignores the groups), so std sqrt(2 / (C k^2)): 1/30 of 'deeplab''s
    for C = 960 at 3x3;
  * head and aux head convs (ASPP, projection, classifier, FCN head): PyTorch's Conv2d default,
    kernel and bias uniform in +-1 / sqrt(fan_in) (kaiming_uniform with a = sqrt(5));
  * BatchNorm scale 1, offset 0 (as 'deeplab').
  With BatchNorm after a conv the kernel's scale does not change the function, but a small kernel
  learns faster (the gradient is inversely proportional to its norm, the update relative to it
  inversely to its square).
"""
import jax

from deeplab_jax.errors import UserError

SCHEMES = ('deeplab', 'torchvision')
HEADS = ('head', 'aux_head')


def reinitialize(params: dict, scheme: str, rng: jax.Array) -> dict:
  """params (a fresh model's) with the kernels and biases that `scheme` draws differently redrawn."""
  if scheme not in SCHEMES:
    raise UserError(f'model.init_scheme={scheme!r}; expected one of {", ".join(SCHEMES)}.')
  if scheme == 'deeplab':
    return params
  flat = jax.tree_util.tree_flatten_with_path(params)[0]
  fan_in = {}  # conv module path -> its kernel's fan-in, for the kernel's and the bias's bound
  for path, value in flat:
    names = _names(path)
    if names[-1] == 'kernel' and value.ndim == 4:
      fan_in[names[:-1]] = value.shape[0] * value.shape[1] * value.shape[2]
  leaves = []
  for i, (path, value) in enumerate(flat):
    names, key = _names(path), jax.random.fold_in(rng, i)
    leaves.append(_torchvision(names, value, key, fan_in))
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params), leaves)


def _torchvision(names: tuple[str, ...], value: jax.Array, key: jax.Array, fan_in: dict) -> jax.Array:
  in_head = names[0] in HEADS
  if names[-1] == 'kernel' and value.ndim == 4:
    k_h, k_w, c_in, c_out = value.shape
    if in_head:
      return _uniform(key, value, 1.0 / fan_in[names[:-1]] ** 0.5)
    if c_in == 1:  # depthwise: PyTorch's fan-out of a [C, 1, k, k] weight is C * k * k
      return jax.random.normal(key, value.shape, value.dtype) * (2.0 / (c_out * k_h * k_w)) ** 0.5
    return value
  if names[-1] == 'bias' and in_head and names[:-1] in fan_in:
    return _uniform(key, value, 1.0 / fan_in[names[:-1]] ** 0.5)
  return value


def _uniform(key: jax.Array, like: jax.Array, bound: float) -> jax.Array:
  return jax.random.uniform(key, like.shape, like.dtype, -bound, bound)


def _names(path) -> tuple[str, ...]:
  return tuple(str(getattr(p, 'key', p)) for p in path)
