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


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
  """numerator / denominator elementwise, NaN where the denominator is 0."""
  with np.errstate(divide='ignore', invalid='ignore'):
    return np.where(denominator > 0, numerator / np.maximum(denominator, 1), np.nan)


def _nanmean(values: np.ndarray) -> float:
  return float(np.nanmean(values)) if np.any(~np.isnan(values)) else float('nan')


def _by_name(names, values) -> dict:
  return {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, values)}


def summarize(confusion: np.ndarray, class_names=None) -> dict:
  """Every split-level metric from one [C, C] confusion matrix (rows: label, columns: prediction).

  IoU_c = TP / (label pixels + predicted pixels - TP) and class accuracy_c = TP / label pixels, as
  torchvision's segmentation reference computes them. A class absent from both labels and predictions
  has no IoU (None) and is left out of the mean, as in the official DeepLab evaluation; a class with no
  label pixels has no accuracy and is left out of the mean class accuracy. Frequency-weighted IoU
  weights each class's IoU by its share of the labelled pixels.

  Returns:
    A JSON-ready dict: miou, pixel_accuracy, mean_class_accuracy, frequency_weighted_iou, num_pixels,
    and per-class dicts per_class_iou, per_class_accuracy, pixels_per_class keyed by class name.
  """
  confusion = np.asarray(confusion, np.int64)
  true_positive = np.diag(confusion)
  label_pixels, predicted_pixels = confusion.sum(1), confusion.sum(0)
  iou = _ratio(true_positive, label_pixels + predicted_pixels - true_positive)
  accuracy = _ratio(true_positive, label_pixels)
  total = confusion.sum()
  frequency = label_pixels / max(total, 1)
  names = list(class_names) if class_names is not None else [str(i) for i in range(len(iou))]
  return {
      'miou': _nanmean(iou),
      'pixel_accuracy': float(true_positive.sum() / total) if total else float('nan'),
      'mean_class_accuracy': _nanmean(accuracy),
      # A class with label pixels always has a union > 0, so its IoU is defined.
      'frequency_weighted_iou': float(np.sum(frequency[label_pixels > 0] * iou[label_pixels > 0]))
                                if total else float('nan'),
      'per_class_iou': _by_name(names, iou),
      'per_class_accuracy': _by_name(names, accuracy),
      'pixels_per_class': {n: int(c) for n, c in zip(names, label_pixels)},
      'num_pixels': int(total),
  }
