"""The whole inference function (uint8 image -> normalise -> model -> labels or probabilities) as one
serialized `jax.export` artifact, weights included, that plain JAX loads and runs without this code:

    from jax import export
    with open('model.jax', 'rb') as f:
      exported = export.deserialize(bytearray(f.read()))
    labels = exported.call(images)  # images: uint8 [B, H, W, 3]

Heights and widths are fixed (export.height/width, default export.image_size) or symbolic (0): then
any side M * k + 1 (corner-aligned models; M * k otherwise, M = predict.pad_multiple) is accepted;
pad bottom/right with the mean colour to reach one. The normalisation the model was trained with is
inside the function; PATH.json beside the file says which (and the input, output and class names).
A path ending in .onnx writes ONNX instead (jax2onnx, an optional dependency), for onnxruntime. Paths
are local or gs:// (etils.epath).
"""
import json
import os
from unittest import mock

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections

from deeplab_jax.data import normalization
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import inference
from deeplab_jax.ops import pool

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


def input_size(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(height, width) of config.export, 0 for symbolic; export.height/width 0 take export.image_size."""
  e = config.export
  size = tuple(int(e[k] or e.image_size) for k in ('height', 'width'))
  if min(size) < 0 or e.batch_size < 0:
    raise UserError(f'Export sizes must be positive (or 0: symbolic), got height x width {size} and '
                    f'batch {e.batch_size} (config export.height, export.width, export.batch_size).')
  if 0 in size and any(float(s) != 1.0 for s in config.eval.scales):
    raise UserError(f'A symbolic export size needs eval.scales=(1.0,) (got {tuple(config.eval.scales)}): '
                    'resizing by a scale needs concrete sides. Fix export.height/width, or drop the scales.')
  return size


def input_spec(height: int, width: int, batch_size: int = 0, multiple: int = 64,
               corner_aligned: bool = True) -> jax.ShapeDtypeStruct:
  """uint8 [B, H, W, 3]; B symbolic for batch_size 0, and H (W) `multiple * h (+ 1)` for height 0."""
  names, dims = [], []
  for name, size in (('b', batch_size), ('h', height), ('w', width)):
    names.append(name)
    dims.append(str(size) if size else (name if name == 'b' else
                                        f'{multiple}*{name}' + ('+1' if corner_aligned else '')))
  symbolic = jax.export.symbolic_shape(', '.join(dims))
  return jax.ShapeDtypeStruct((*symbolic, 3), jnp.uint8)


def export(infer, height: int, width: int | None = None, batch_size: int = 0, platforms=(),
           multiple: int = 64, corner_aligned: bool = True) -> jax.export.Exported:
  """jax.export of infer at input uint8 [B, height, width, 3] (0: symbolic, see input_spec).

  Raises UserError when the model cannot take that size.
  """
  width = height if width is None else width
  spec = input_spec(height, width, batch_size, multiple, corner_aligned)
  try:
    return jax.export.export(jax.jit(infer), platforms=tuple(platforms) or None)(spec)
  except (TypeError, ValueError, jax.errors.InconclusiveDimensionOperation) as e:
    raise UserError(f'The model cannot take input {spec.shape} ({type(e).__name__}: '
                    f'{str(e).splitlines()[0][:300]}). Use sides OS * k + 1 (e.g. 513), or fixed sides '
                    'instead of symbolic ones (export.height, export.width).') from e


def save(exported: jax.export.Exported, path: str, metadata: dict | None = None) -> str:
  """Writes the serialized artifact (bytes) to path, creating its folder, and metadata (what the input
  and output are, the normalisation inside) beside it as PATH.json."""
  return _write(path, exported.serialize(), metadata)


def _write(path: str, payload: bytes, metadata: dict | None) -> str:
  """payload to path and metadata to PATH.json, each through a temporary file: nothing half-written."""
  epath.Path(path).parent.mkdir(parents=True, exist_ok=True)
  files = [(path, payload)]
  if metadata is not None:
    files.append((metadata_path(path), (json.dumps(metadata, indent=2) + '\n').encode()))
  for target, data in files:
    epath.Path(target + '.tmp').write_bytes(data)
  for target, _ in files:
    epath.Path(target + '.tmp').replace(target)
  return path


def metadata_path(path: str) -> str:
  return path + '.json'


def _side(size: int, multiple: int, corner_aligned: bool) -> str:
  return str(size) if size else f'{multiple}*k{"+1" if corner_aligned else ""} (any k >= 1)'


def metadata(config: ml_collections.ConfigDict, step: int) -> dict:
  """What a user of the exported file needs: input, output, classes and the normalisation applied inside."""
  e = config.export
  height, width = input_size(config)
  multiple, aligned = config.predict.pad_multiple, bool(config.model.upsample_align_corners)
  sides = [_side(s, multiple, aligned) for s in (height, width)]
  return {'step': step, 'input': f'uint8 RGB [{e.batch_size or "B"}, {sides[0]}, {sides[1]}, 3]',
          'output': e.output, 'normalization_inside': normalization.record(config.data),
          'scales': list(config.eval.scales), 'flip': bool(config.eval.flip),
          'class_names': list(config.data.class_names), 'ignore_label': config.data.ignore_label}


def load(path: str) -> jax.export.Exported:
  """The artifact at path; `.call(images)` runs it."""
  return jax.export.deserialize(bytearray(epath.Path(path).read_bytes()))


def to_onnx(infer, height: int, width: int, batch_size: int = 0):
  """An onnx ModelProto of infer at uint8 [batch_size, height, width, 3] (all fixed).

  Raises UserError when jax2onnx is not installed or cannot convert the function.
  """
  try:
    import jax2onnx
  except ImportError as e:
    raise UserError('ONNX export needs the optional packages jax2onnx and onnx: '
                    '`pip install jax2onnx onnx` (and onnxruntime to run the file).') from e
  if not (height and width and batch_size):
    raise UserError(f'ONNX export needs fixed sizes, got batch {batch_size or "symbolic"}, height x width '
                    f'{height or "symbolic"} x {width or "symbolic"}: set export.batch_size (e.g. 1) and '
                    'export.image_size (or export.height and export.width). jax2onnx 0.17 fails to lower '
                    'padding under a symbolic batch.')
  spec = jax.ShapeDtypeStruct((batch_size, height, width, 3), jnp.uint8)

  def traced(images):
    # The pools' custom gradient is no use in an inference graph; their plain forward is pads, slices
    # and maxima, which jax2onnx converts.
    with mock.patch.object(pool, 'max_pool', pool.plain_max_pool):
      return infer(images)

  try:
    return jax2onnx.to_onnx(traced, [spec], input_names=['images'], output_names=['output'])
  except Exception as e:  # jax2onnx lacks a converter for some primitive of this model
    raise UserError(f'jax2onnx cannot convert this model at {spec.shape}: {type(e).__name__}: '
                    f'{str(e).splitlines()[0][:300] if str(e) else ""}') from e


def save_onnx(infer, path: str, height: int, width: int, batch_size: int = 0,
              metadata: dict | None = None) -> str:
  """ONNX file of infer (see to_onnx) at path, metadata at PATH.json."""
  return _write(path, to_onnx(infer, height, width, batch_size).SerializeToString(), metadata)


def default_path(workdir: str, config: ml_collections.ConfigDict, step: int) -> str:
  """WORKDIR/export/step<N>_<H>x<W or 'any'>_b<batch or 'any'>_<output>.jax (<N>_<S> when square)."""
  e = config.export
  height, width = input_size(config)
  size = f'{height}' if height == width and height else f'{height or "any"}x{width or "any"}'
  return os.path.join(workdir, 'export', f'step{step}_{size}_b{e.batch_size or "any"}_{e.output}.jax')
