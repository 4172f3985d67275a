"""DeepLab v1-v3+ in JAX/Flax. `deeplab_jax.Segmenter` (imported on first use) runs a trained run."""


def __getattr__(name: str):
  if name == 'Segmenter':  # lazily: `import deeplab_jax` stays free of JAX and the models
    from deeplab_jax.segmenter import Segmenter
    return Segmenter
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
