"""Confusion matrix and mIoU against hand-computed numbers."""
import jax.numpy as jnp
import numpy as np

from deeplab_jax.evaluate import metrics


def test_confusion_matrix_counts_and_ignores_255():
  labels = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
  preds = np.array([[0, 1, 1, 1], [2, 0, 2, 0]])
  cm = np.asarray(metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(preds), 3, 255))
  expected = np.zeros((3, 3), int)
  for t, p in zip(labels.ravel(), preds.ravel()):
    if t != 255:
      expected[t, p] += 1
  np.testing.assert_array_equal(cm, expected)
  assert cm.sum() == 7


def test_miou_by_hand_with_an_absent_class():
  # Classes 0..3; class 3 appears in neither labels nor predictions and is left out of the mean.
  cm = np.array([[3, 1, 0, 0],
                 [0, 2, 0, 0],
                 [1, 0, 1, 0],
                 [0, 0, 0, 0]])
  result = metrics.summarize(cm, ['a', 'b', 'c', 'd'])
  iou_a, iou_b, iou_c = 3 / (4 + 4 - 3), 2 / (2 + 3 - 2), 1 / (2 + 1 - 1)
  assert result['per_class_iou']['d'] is None
  np.testing.assert_allclose(result['per_class_iou']['a'], iou_a)
  np.testing.assert_allclose(result['miou'], (iou_a + iou_b + iou_c) / 3)
  np.testing.assert_allclose(result['pixel_accuracy'], 6 / 8)
  assert result['pixels_per_class'] == {'a': 4, 'b': 2, 'c': 2, 'd': 0}


def test_predicted_but_absent_class_counts_as_zero_iou():
  cm = np.array([[1, 1], [0, 0]])  # class 1 predicted once, never in the labels
  result = metrics.summarize(cm)
  assert result['per_class_iou']['1'] == 0.0
  np.testing.assert_allclose(result['miou'], (0.5 + 0.0) / 2)


def torchvision_reference(cm):
  """torchvision references/segmentation/utils.py ConfusionMatrix.compute, re-done in numpy."""
  h = cm.astype(np.float64)
  with np.errstate(divide='ignore', invalid='ignore'):
    acc_global = np.diag(h).sum() / h.sum()
    acc = np.diag(h) / h.sum(1)
    iu = np.diag(h) / (h.sum(1) + h.sum(0) - np.diag(h))
  return acc_global, acc, iu


def test_metrics_match_torchvision_reference_on_random_predictions():
  rng = np.random.default_rng(1)
  num_classes = 7
  labels = rng.integers(0, num_classes, size=(3, 40, 50))
  labels[rng.random(labels.shape) < 0.1] = 255
  # Mostly right, sometimes a random class: a realistic, non-diagonal matrix.
  preds = np.where(rng.random(labels.shape) < 0.6, labels % num_classes,
                   rng.integers(0, num_classes, labels.shape))
  cm = np.asarray(metrics.confusion_matrix(jnp.asarray(labels), jnp.asarray(preds), num_classes, 255))
  # torchvision's update: bincount over labels in [0, n) (255 excluded).
  keep = (labels >= 0) & (labels < num_classes)
  expected_cm = np.bincount(num_classes * labels[keep] + preds[keep],
                            minlength=num_classes ** 2).reshape(num_classes, num_classes)
  np.testing.assert_array_equal(cm, expected_cm)
  acc_global, acc, iu = torchvision_reference(expected_cm)
  result = metrics.summarize(cm)
  np.testing.assert_allclose(result['pixel_accuracy'], acc_global)
  np.testing.assert_allclose(list(result['per_class_accuracy'].values()), acc)
  np.testing.assert_allclose(list(result['per_class_iou'].values()), iu)
  np.testing.assert_allclose(result['miou'], iu.mean())  # every class present: torchvision's mean
  np.testing.assert_allclose(result['mean_class_accuracy'], acc.mean())
  freq = expected_cm.sum(1) / expected_cm.sum()
  np.testing.assert_allclose(result['frequency_weighted_iou'], (freq * iu).sum())


def test_class_accuracy_and_frequency_weighted_iou_by_hand_with_absent_classes():
  # Class 3 absent from labels and predictions; class 2 predicted but never a label.
  cm = np.array([[3, 1, 0, 0],
                 [0, 2, 1, 0],
                 [0, 0, 0, 0],
                 [0, 0, 0, 0]])
  result = metrics.summarize(cm, ['a', 'b', 'c', 'd'])
  assert result['per_class_accuracy'] == {'a': 0.75, 'b': 2 / 3, 'c': None, 'd': None}
  assert result['per_class_iou']['c'] == 0.0 and result['per_class_iou']['d'] is None
  np.testing.assert_allclose(result['mean_class_accuracy'], (0.75 + 2 / 3) / 2)
  iou_a, iou_b = 3 / (4 + 3 - 3), 2 / (3 + 3 - 2)
  np.testing.assert_allclose(result['miou'], (iou_a + iou_b + 0.0) / 3)
  np.testing.assert_allclose(result['frequency_weighted_iou'], 4 / 7 * iou_a + 3 / 7 * iou_b)
  np.testing.assert_allclose(result['pixel_accuracy'], 5 / 7)


def test_empty_confusion_matrix_gives_nan_not_an_error():
  result = metrics.summarize(np.zeros((3, 3), int))
  assert np.isnan(result['miou']) and np.isnan(result['mean_class_accuracy'])
  assert result['num_pixels'] == 0
