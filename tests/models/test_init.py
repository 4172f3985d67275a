"""model.init_scheme: 'torchvision' draws kernels at the scales torchvision's weights=None model has."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.pretrained import torchvision_deeplabv3
from deeplab_jax import peers
from deeplab_jax.errors import UserError
from deeplab_jax.models import deeplab, init


def kernel_scales(kernels) -> dict:
  """(kh, kw, cin, cout, in_head) -> the mean std of the kernels of that shape and place."""
  groups = collections.defaultdict(list)
  for shape, in_head, w in kernels:
    groups[(*shape, in_head)].append(float(np.std(w)))
  return {k: np.mean(v) for k, v in groups.items()}


def uniform_in_fan_in_bound(kernels) -> bool:
  """Every head kernel lies within PyTorch's default bound 1 / sqrt(fan_in) (a normal would not)."""
  return all(np.abs(w).max() <= (1 + 1e-6) / np.sqrt(np.prod(shape[:3])) for shape, in_head, w in kernels
             if in_head)


def jax_kernels(scheme: str):
  config = torchvision_deeplabv3.get_config('mobilenet_v3_large')
  config.data.num_classes = 11
  model = deeplab.build_model(config, train=False)

  @jax.jit
  def fresh(rng):
    params = model.init(rng, jnp.zeros((1, 65, 65, 3)))['params']
    return init.reinitialize(params, scheme, jax.random.fold_in(rng, 1))

  flat = jax.tree_util.tree_flatten_with_path(jax.device_get(fresh(jax.random.key(0))))[0]
  return [(w.shape, str(path[0].key) in init.HEADS, w) for path, w in flat
          if str(path[-1].key) == 'kernel' and w.ndim == 4]


def test_torchvision_scheme_matches_torchvisions_own_initialisation():
  peers.add_to_path()
  torch = pytest.importorskip('torch')
  pytest.importorskip('tv_shim')
  import tv_shim  # noqa: F401

  from torchvision.models import segmentation
  torch.manual_seed(0)
  peer = segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=11,
                                                   aux_loss=True)
  theirs = kernel_scales([(tuple(p.shape[2:]) + (p.shape[1], p.shape[0]),
                           name.startswith(('classifier', 'aux_classifier')), p.detach().numpy())
                          for name, p in peer.named_parameters() if p.ndim == 4])
  ours_kernels, default_kernels = jax_kernels('torchvision'), jax_kernels('deeplab')
  ours, default = kernel_scales(ours_kernels), kernel_scales(default_kernels)
  # torch's [cout, cin/groups, kh, kw] -> ours [kh, kw, cin/groups, cout]: the same kernel shapes.
  assert set(ours) == set(theirs)
  for key in theirs:  # std within sampling noise (the smallest kernels have 9 * 16 values)
    np.testing.assert_allclose(ours[key], theirs[key], rtol=0.25, err_msg=str(key))
  off = [k for k in theirs if not np.allclose(default[k], theirs[k], rtol=0.25)]
  # The modules' own initialisers differ exactly on the depthwise kernels and the heads.
  assert off and all(k[2] == 1 or k[4] for k in off)
  assert any(k[2] == 1 for k in off) and any(k[4] for k in off)
  assert uniform_in_fan_in_bound(ours_kernels) and not uniform_in_fan_in_bound(default_kernels)


def test_the_deeplab_scheme_changes_nothing_and_an_unknown_one_is_an_error():
  params = {'head': {'logits': {'kernel': jnp.ones((1, 1, 4, 2)), 'bias': jnp.ones(2)}}}
  assert init.reinitialize(params, 'deeplab', jax.random.key(0)) is params
  redrawn = init.reinitialize(params, 'torchvision', jax.random.key(0))
  assert np.abs(redrawn['head']['logits']['bias']).max() <= 0.5  # U(+-1 / sqrt(fan_in 4))
  with pytest.raises(UserError, match="model.init_scheme='xavier'"):
    init.reinitialize(params, 'xavier', jax.random.key(0))
