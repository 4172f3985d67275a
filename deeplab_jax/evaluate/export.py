"""The whole inference function (uint8 image -> normalise -> model -> labels or probabilities) as one
serialized `jax.export` artifact, weights included, that plain JAX loads and runs without this code:

    from jax import export
    with open('model.jax', 'rb') as f:
      exported = export.deserialize(bytearray(f.read()))
    labels = exported.call(images)  # images: uint8 [B, S, S, 3]

The normalisation the model was trained with is inside the function; PATH.json beside the file says
which (and the input, output and class names).
"""
import json
import os

import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax.data import normalization
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference

OUTPUTS = ('labels', 'probabilities')


def inference_function(model, variables: dict, mean, std, setting: inference.Setting,
                       output: str = 'labels'):
  """images uint8 [B, H, W, 3] -> labels int32 [B, H, W] or probabilities float32 [B, H, W, C].

  The variables are closed over, so they become constants of the exported program.
  """
  if output not in OUTPUTS:
    raise UserError(f'Unknown export output {output!r} (config export.output); known: {OUTPUTS}.')
  logits = inference.model_logits(model)

  def infer(images):
    x = (images.astype(jnp.float32) - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)
    probs = inference.probabilities(logits, variables, x, setting)
    return probs if output == 'probabilities' else jnp.argmax(probs, -1).astype(jnp.int32)
  return infer


def export(infer, image_size: int, batch_size: int = 0, platforms=()) -> jax.export.Exported:
  """jax.export of infer at input uint8 [B, image_size, image_size, 3]; B symbolic if batch_size is 0."""
  batch = jax.export.symbolic_shape('b')[0] if batch_size == 0 else batch_size
  spec = jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.uint8)
  return jax.export.export(jax.jit(infer), platforms=tuple(platforms) or None)(spec)


def save(exported: jax.export.Exported, path: str, metadata: dict | None = None) -> str:
  """Writes the serialized artifact (bytes) to path, creating its folder, and metadata (what the input
  and output are, the normalisation inside) beside it as PATH.json."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(exported.serialize())
  if metadata is not None:
    with open(metadata_path(path), 'w') as f:
      json.dump(metadata, f, indent=2)
      f.write('\n')
  return path


def metadata_path(path: str) -> str:
  return path + '.json'


def metadata(config: ml_collections.ConfigDict, step: int) -> dict:
  """What a user of the exported file needs: input, output, classes and the normalisation applied inside."""
  e = config.export
  return {'step': step, 'input': f'uint8 RGB [{e.batch_size or "B"}, {e.image_size}, {e.image_size}, 3]',
          'output': e.output, 'normalization_inside': normalization.record(config.data),
          'class_names': list(config.data.class_names), 'ignore_label': config.data.ignore_label}


def load(path: str) -> jax.export.Exported:
  """The artifact at path; `.call(images)` runs it."""
  with open(path, 'rb') as f:
    return jax.export.deserialize(bytearray(f.read()))


def default_path(workdir: str, config: ml_collections.ConfigDict, step: int) -> str:
  """WORKDIR/export/step<N>_<size>_b<batch or 'any'>_<output>.jax"""
  e = config.export
  batch = e.batch_size or 'any'
  return os.path.join(workdir, 'export', f'step{step}_{e.image_size}_b{batch}_{e.output}.jax')
