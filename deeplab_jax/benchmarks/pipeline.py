"""Training-pipeline throughput in images/s on VOC-sized synthetic JPEGs, for 1, 2, ... tf.data threads.

    python -m deeplab_jax.benchmarks.pipeline --config=configs/quickstart.py [--threads=1,2] [--batches=20]
        [--sources=folder,tfds]      (also: python -m deeplab_jax.data.benchmark)

Runs the real training pipeline (decode, label checks, random scale 0.5-2.0, mean-pixel padding, crop,
flip, normalisation, batching) at the crop size given by --crop (default 513, the paper's), each thread
count in a private tf.data thread pool of that size. --sources=tfds reads the same images from
array_record shards written once by deeplab_jax.data.tfds_builder (under --root/records).
"""
import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from deeplab_jax.data import pipeline, synthetic, voc  # noqa: E402
from deeplab_jax.data.split import Split  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
  """This command's flags; defined only when run, so the benchmarks import side by side."""
  config_flags.DEFINE_config_file('config', 'configs/quickstart.py', 'Config whose data fields (scales, '
                                  'normalisation, flip) are measured.')
  flags.DEFINE_string('root', os.path.join(tempfile.gettempdir(), 'deeplab_jax_benchmark'),
                      'Where the synthetic images go.')
  flags.DEFINE_integer('images', 96, 'Synthetic training images (sides 375..500, as VOC).')
  flags.DEFINE_list('threads', ['1', '2'], 'tf.data thread counts to measure.')
  flags.DEFINE_integer('batches', 20, 'Timed batches per thread count, after 3 warm-up ones.')
  flags.DEFINE_integer('batch_size', 16, 'Images per batch.')
  flags.DEFINE_integer('crop', 513, 'Training crop size.')
  flags.DEFINE_list('sources', ['folder'], 'folder (JPEG + PNG files) and/or tfds (array_record shards).')
  flags.DEFINE_bool('uint8', True, 'Measure the stream the trainer reads (uint8 images, normalised on '
                    'the device); --nouint8: float32 images normalised on the host.')


def measure(split: Split, data, threads: int, batches: int, batch_size: int, as_uint8: bool = True):
  """(images per wall-clock second, images per CPU-second, cores used) with `threads` threads.

  The CPU figure does not depend on what else loads the machine: on C free cores the pipeline can
  deliver at most C times it.
  """
  data.num_threads = data.num_parallel_calls = threads
  stream = pipeline.train_batches(split, data, seed=0, global_batch=batch_size, as_uint8=as_uint8)
  for _ in range(3):
    next(stream)
  start, cpu_start = time.perf_counter(), time.process_time()
  for _ in range(batches):
    next(stream)
  elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
  stream.close()
  return batches * batch_size / elapsed, batches * batch_size / cpu, cpu / elapsed


def main(argv):
  del argv
  data = FLAGS.config.data
  data.unlock()
  data.crop_size = FLAGS.crop
  data.min_scale, data.max_scale, data.scale_step = 0.5, 2.0, 0.25  # the paper's, whatever the config
  synthetic.ensure(FLAGS.root, num_train=FLAGS.images, num_val=1, min_size=375, max_size=500, seed=0)
  split = voc.read_split(FLAGS.root, 'train', 'SegmentationClass')
  print(f'{len(split)} JPEGs 375..500 px a side, crop {data.crop_size}, batch {FLAGS.batch_size}, '
        f'{os.cpu_count()} CPUs')
  for source in FLAGS.sources:
    split, source_data = _source(source, data, split)
    for threads in map(int, FLAGS.threads):
      load = os.getloadavg()[0]
      rate, per_cpu, cores = measure(split, source_data, threads, FLAGS.batches, FLAGS.batch_size,
                                     FLAGS.uint8)
      print(f'{source} threads {threads}: {rate:7.1f} images/s, {per_cpu:6.1f} images per CPU-second, '
            f'{cores:4.2f} cores busy (1-min load average before: {load:.2f})', flush=True)


def _source(source: str, data, folder: Split):
  """(split, data config) of the benchmark images as files ('folder') or array_record shards ('tfds')."""
  if source == 'folder':
    return folder, data
  from deeplab_jax.data import datasets, tfds_builder
  records = data.copy_and_resolve_references()
  records.dataset, records.root, records.train_split = 'voc', FLAGS.root, 'train'
  name = f'benchmark_{len(folder)}'
  tfds_builder.build(records, os.path.join(FLAGS.root, 'records'), name, splits=['train'],
                     log=lambda *_: None)
  records.dataset, records.tfds_name = 'tfds', f'deeplab_segmentation/{name}'
  records.tfds_data_dir = os.path.join(FLAGS.root, 'records')
  return datasets.read_split(records, 'train'), records


if __name__ == '__main__':
  define_flags()
  app.run(main)
