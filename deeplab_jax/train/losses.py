"""Segmentation losses."""
import jax
import jax.numpy as jnp
import optax


def cross_entropy(logits: jax.Array, labels: jax.Array, ignore_label: int) -> jax.Array:
  """Softmax cross-entropy averaged over the pixels whose label is not `ignore_label`.

  Args:
    logits: [B, H, W, C] (computed in float32 whatever the model's dtype).
    labels: [B, H, W] integer class indices or ignore_label.
  Returns:
    Scalar loss; 0 when every pixel is ignored.
  """
  valid = labels != ignore_label
  safe_labels = jnp.where(valid, labels, 0)
  per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe_labels)
  return jnp.sum(per_pixel * valid) / jnp.maximum(jnp.sum(valid), 1)


def deeplab_loss(outputs: dict, labels: jax.Array, ignore_label: int,
                 aux_loss_weight: float = 0.5) -> tuple[jax.Array, dict[str, jax.Array]]:
  """The training loss of a DeepLab's outputs: the sum of `cross_entropy` over its logit maps.

  'logits' always counts; with MSC (DeepLab v2) each of 'scale_logits' counts too, with weight 1 as in
  v2 (scales 1, 0.75, 0.5 plus the max-fused output: four terms); an 'aux' map counts with
  aux_loss_weight.

  Args:
    outputs: the model's dict; every map [B, H, W, C] at the labels' size.
    labels: [B, H, W] class indices or ignore_label.
  Returns:
    (total loss, {term name: loss}), names 'logits', 'scale0'.., 'aux'.
  """
  terms = {'logits': cross_entropy(outputs['logits'], labels, ignore_label)}
  for i, logits in enumerate(outputs.get('scale_logits', ())):
    terms[f'scale{i}'] = cross_entropy(logits, labels, ignore_label)
  total = sum(terms.values())
  if 'aux' in outputs:
    terms['aux'] = cross_entropy(outputs['aux'], labels, ignore_label)
    total = total + aux_loss_weight * terms['aux']
  return total, terms
