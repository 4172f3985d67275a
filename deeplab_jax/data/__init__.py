"""Datasets (readers of on-disk layouts), joint image/label transforms and the tf.data pipeline.

    voc, cityscapes, ade20k, folder   readers: a split as parallel lists of image and label paths
    datasets                          the config's dataset -> (train, eval) splits, official sizes checked
    labels                            label maps (Cityscapes ids -> train ids, ADE20K 0 -> ignore, ...)
    reading                           decoding and checking one pair, in Python (pipeline + inspect_data)
    transforms, pipeline              tf.data: augmentation, normalisation, sharded deterministic batches
    inspection                        --mode=inspect_data
    synthetic, palette                the built-in synthetic dataset; the VOC colour map

TensorFlow is imported only by the pipeline and transforms modules (and deeplab_jax.benchmarks.pipeline,
their throughput command), so that models and train steps run without it.
"""
