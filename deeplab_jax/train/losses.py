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
