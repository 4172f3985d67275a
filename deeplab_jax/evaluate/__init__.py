"""Evaluation: confusion-matrix metrics and the evaluation pass over a split."""
