"""Confusion matrix and the segmentation metrics derived from it."""
import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix(labels: jax.Array, predictions: jax.Array, num_classes: int,
                     ignore_label: int) -> jax.Array:
  """[C, C] int32 counts, rows = true class, columns = predicted; ignore_label pixels excluded.

  Labels outside [0, C) other than ignore_label are excluded too (the data pipeline rejects them).
  """
  labels, predictions = labels.reshape(-1), predictions.reshape(-1)
  valid = (labels != ignore_label) & (labels >= 0) & (labels < num_classes)
  index = jnp.where(valid, labels * num_classes + predictions, 0)
  counts = jnp.bincount(index, weights=valid.astype(jnp.int32), length=num_classes * num_classes)
  return counts.astype(jnp.int32).reshape(num_classes, num_classes)


def summarize(confusion: np.ndarray, class_names=None) -> dict:
  """mIoU, per-class IoU, pixel accuracy and pixel counts from a confusion matrix.

  A class absent from both labels and predictions has no IoU (None) and is left out of the mean, as in
  the official DeepLab and torchvision evaluations.
  """
  confusion = np.asarray(confusion, np.int64)
  true_positive = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - true_positive
  with np.errstate(divide='ignore', invalid='ignore'):
    iou = np.where(union > 0, true_positive / union, np.nan)
  total = confusion.sum()
  names = list(class_names) if class_names is not None else [str(i) for i in range(len(iou))]
  return {
      'miou': float(np.nanmean(iou)) if np.any(union > 0) else float('nan'),
      'pixel_accuracy': float(true_positive.sum() / total) if total else float('nan'),
      'per_class_iou': {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, iou)},
      'pixels_per_class': {n: int(c) for n, c in zip(names, confusion.sum(1))},
      'num_pixels': int(total),
  }
