"""Datasets (readers of on-disk layouts), joint image/label transforms and the tf.data pipeline.

TensorFlow is imported only by the pipeline and transforms modules, so that models and train steps run
without it.
"""
