"""`python -m deeplab_jax.data.benchmark`: the input-pipeline throughput command, by the name the data
docs use; the code is deeplab_jax.benchmarks.pipeline (flags: --threads, --batches, --sources, ...)."""
from absl import app

from deeplab_jax.benchmarks import pipeline

if __name__ == '__main__':
  pipeline.define_flags()
  app.run(pipeline.main)
