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
