"""SGD with momentum, the poly learning-rate schedule and L2 weight decay on conv kernels."""
import jax
import ml_collections
import optax


def poly_schedule(train_cfg: ml_collections.ConfigDict) -> optax.Schedule:
  """base_lr * (1 - step / num_steps) ** lr_power, as every DeepLab paper trains."""
  return optax.polynomial_schedule(train_cfg.base_lr, 0.0, train_cfg.lr_power, train_cfg.num_steps)


def kernel_mask(params):
  """True for conv kernels, False for BatchNorm scales/offsets and biases (DeepLab decays weights only)."""
  return jax.tree_util.tree_map_with_path(lambda path, _: path[-1].key == 'kernel', params)


def create_optimizer(train_cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Weight decay (the gradient of weight_decay / 2 * |w|^2) then SGD with momentum on the poly schedule."""
  return optax.chain(
      optax.add_decayed_weights(train_cfg.weight_decay, mask=kernel_mask),
      optax.sgd(poly_schedule(train_cfg), momentum=train_cfg.momentum))
