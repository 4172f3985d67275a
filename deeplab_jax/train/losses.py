"""Segmentation losses: softmax cross-entropy over labelled pixels, with class weights and hard mining.

Hard pixel mining keeps the largest (weighted) pixel losses, in one of two scopes (train.top_k_scope):
  * 'batch', the official TF DeepLab's (train_utils.add_softmax_cross_entropy_loss_for_each_scale):
    top-k over the whole flattened [B * H * W] batch, k = int(fraction * B * H * W) counting ignored
    pixels, and the kept losses' sum divided by how many of them are non-zero.
  * 'image': top-k per image over its labelled pixels, k = ceil(fraction * labelled), divided by the
    kept count; the loss of a batch then does not depend on how the batch is split.
"""
from typing import Sequence

import jax
import jax.numpy as jnp
import optax

TOP_K_SCOPES = ('batch', 'image')


def top_k_fraction(step: jax.Array, top_k_percent: float, hard_mining_steps: int) -> jax.Array:
  """The fraction of pixels kept by hard mining at `step`, as the official DeepLab ramps it.

  Starts at 1 (all pixels) and falls linearly to top_k_percent / 100 over hard_mining_steps (at once if 0).
  """
  target = top_k_percent / 100.0
  ramp = jnp.minimum(1.0, step / hard_mining_steps) if hard_mining_steps else 1.0
  return jnp.asarray(ramp * target + (1.0 - ramp), jnp.float32)


def _kept_per_image(valid: jax.Array, fraction) -> jax.Array:
  """[B] how many of each image's labelled pixels hard mining keeps (at least one if any)."""
  count = jnp.sum(valid, axis=(1, 2)).astype(jnp.float32)
  return jnp.minimum(count, jnp.maximum(jnp.ceil(count * fraction), jnp.minimum(count, 1.0)))


def num_loss_pixels(labels: jax.Array, ignore_label: int, top_k: jax.Array | float = 1.0) -> jax.Array:
  """The denominator of `cross_entropy`: labelled pixels, or those hard mining keeps. Labels only.

  Steps that split a batch (devices, micro-batches) weight each part's mean loss by this count, so the
  combined loss is the mean over the whole batch.
  """
  return jnp.sum(_kept_per_image(labels != ignore_label, top_k))


def _batch_top_k_mean(per_pixel: jax.Array, fraction) -> jax.Array:
  """The official DeepLab's hard mining of per_pixel [B, H, W] losses (0 on ignored pixels)."""
  flat = per_pixel.reshape(-1)
  # tf.to_int32(top_k_percent_pixels * num_pixels), in float32 as there.
  k = jnp.floor(jnp.asarray(fraction, jnp.float32) * jnp.float32(flat.size))
  ranked = -jnp.sort(-flat)
  kept = jnp.where(jnp.arange(flat.size) < k, ranked, 0.0)
  return jnp.sum(kept) / jnp.maximum(jnp.sum(kept != 0.0), 1)


def cross_entropy(logits: jax.Array, labels: jax.Array, ignore_label: int,
                  class_weights: Sequence[float] | None = None,
                  top_k: jax.Array | float = 1.0, top_k_scope: str = 'batch') -> jax.Array:
  """Softmax cross-entropy averaged over the pixels whose label is not `ignore_label`.

  Args:
    logits: [B, H, W, C] (computed in float32 whatever the model's dtype).
    labels: [B, H, W] integer class indices or ignore_label.
    class_weights: optional [C] multipliers of each pixel's loss by its label. As in the official
      DeepLab the mean still divides by the pixel count, not by the sum of weights.
    top_k: fraction of pixels kept, the hardest (largest weighted loss) first: online hard pixel
      mining, in top_k_scope.
    top_k_scope: 'batch' (the official DeepLab's: over the flattened batch, ignored pixels counted in
      its size, divided by the non-zero kept losses) or 'image' (per image over labelled pixels).
  Returns:
    Scalar loss; 0 when every pixel is ignored.
  """
  valid = labels != ignore_label
  safe_labels = jnp.where(valid, labels, 0)
  per_pixel = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe_labels)
  if class_weights is not None:
    per_pixel = per_pixel * jnp.asarray(class_weights, jnp.float32)[safe_labels]
  per_pixel = jnp.where(valid, per_pixel, 0.0)
  if isinstance(top_k, (int, float)) and top_k >= 1.0:
    return jnp.sum(per_pixel) / jnp.maximum(jnp.sum(valid), 1)
  if top_k_scope == 'batch':
    return _batch_top_k_mean(per_pixel, top_k)
  kept = _kept_per_image(valid, top_k)
  # Ignored pixels have loss 0 and sort last, so the first `kept` of each image are labelled ones.
  ranked = -jnp.sort(-per_pixel.reshape(per_pixel.shape[0], -1), axis=1)
  rank = jnp.arange(ranked.shape[1])[None, :]
  return jnp.sum(jnp.where(rank < kept[:, None], ranked, 0.0)) / jnp.maximum(jnp.sum(kept), 1)


def deeplab_loss(outputs: dict, labels: jax.Array, ignore_label: int, aux_loss_weight: float = 0.5,
                 class_weights: Sequence[float] | None = None,
                 top_k: jax.Array | float = 1.0,
                 top_k_scope: str = 'batch') -> tuple[jax.Array, dict[str, jax.Array]]:
  """The training loss of a DeepLab's outputs: the sum of `cross_entropy` over its logit maps.

  'logits' always counts; with MSC (DeepLab v2) each of 'scale_logits' counts too, with weight 1 as in
  v2 (scales 1, 0.75, 0.5 plus the max-fused output: four terms); an 'aux' map counts with
  aux_loss_weight.

  Args:
    outputs: the model's dict; every map [B, H, W, C] at the labels' size.
    labels: [B, H, W] class indices or ignore_label.
    class_weights, top_k, top_k_scope: as in `cross_entropy`, for every term.
  Returns:
    (total loss, {term name: loss}), names 'logits', 'scale0'.., 'aux'.
  """
  def term(logits):
    return cross_entropy(logits, labels, ignore_label, class_weights, top_k, top_k_scope)

  terms = {'logits': term(outputs['logits'])}
  for i, logits in enumerate(outputs.get('scale_logits', ())):
    terms[f'scale{i}'] = term(logits)
  total = sum(terms.values())
  if 'aux' in outputs:
    terms['aux'] = term(outputs['aux'])
    total = total + aux_loss_weight * terms['aux']
  return total, terms
