"""Datasets (readers of on-disk layouts), joint image/label transforms and the tf.data pipeline.

    voc, cityscapes, ade20k, folder   readers: a split as parallel lists of image and label paths
    tfds_source, tfds_builder         data.dataset='tfds': prepared tfds datasets read by index; our
                                      builder writing any of the above as sharded records
    datasets                          the config's dataset -> (train, eval) splits, official sizes checked
    labels                            label maps (named, or explicit '0:0,255:1'), label-histogram warnings
    reading                           decoding and checking one pair in Python (the formats TF cannot
                                      decode, and inspect_data)
    transforms, pipeline              tf.data: graph decoding, augmentation, normalisation, sharded
                                      deterministic batches
    inspection, benchmark             --mode=inspect_data; the input-throughput command
    synthetic, palette, sizes         the built-in synthetic dataset; colour maps; config sizes

TensorFlow is imported only by the pipeline, transforms and tfds_builder modules (and
deeplab_jax.benchmarks.pipeline, their throughput command; tfds_source and inspection import it only
to read records), so that models and train steps run without it.
"""
