"""A trained run in users' own code: `Segmenter.from_workdir(workdir)(image)` -> labels [H, W].

    import deeplab_jax
    segmenter = deeplab_jax.Segmenter.from_workdir('runs/v3_voc', scales=(0.5, 1.0, 1.5), flip=True)
    labels = segmenter(PIL.Image.open('photo.jpg'))         # uint8 [H, W] class indices
    probs = segmenter.probabilities(image)                   # float32 [H, W, C]
    names = segmenter.class_names

It runs the code of `--mode=predict` (deeplab_jax.evaluate.predict): the same image conversion,
normalisation, bucketed padding, multi-scale / flip averaging, tiles for large images and dense CRF.
"""
from typing import Sequence

import ml_collections
import numpy as np

from deeplab_jax import run_config
from deeplab_jax.evaluate import predict, run


class Segmenter:
  """Class indices and probabilities of images of any size, from a run's checkpoint."""

  def __init__(self, config: ml_collections.ConfigDict, variables: dict, step: int | None = None):
    """config: the run's config (eval.scales/flip, model.eval_output_stride and crf set as wanted)."""
    self.config, self.variables, self.step = config, variables, step
    self._probs_fn = run.make_probs_fn(config, variables)

  @classmethod
  def from_workdir(cls, workdir: str, step: int | None = None, output_stride: int | None = None,
                   scales: Sequence[float] = (1.0,), flip: bool = False, crf: bool = False,
                   config: ml_collections.ConfigDict | None = None, log=lambda _: None) -> 'Segmenter':
    """The run in workdir (its config.json unless config is given) at checkpoint step (None: the latest).

    Args:
      output_stride: the inference output stride; None: the config's eval (or training) one.
      scales, flip: multi-scale / flip inference (probabilities averaged at the input size).
      crf: refine the probabilities with the dense CRF of config.crf.

    Raises:
      UserError: no config.json, no checkpoints, no such step, or a checkpoint of another model.
    """
    config = (run_config.load(workdir) if config is None else config).copy_and_resolve_references()
    with config.unlocked():
      config.eval.step = int(step or 0)
      config.eval.scales, config.eval.flip = tuple(float(s) for s in scales), bool(flip)
      config.crf.enabled = bool(crf)
      if output_stride:
        config.model.eval_output_stride = int(output_stride)
    variables, restored = run.restore_for_inference(config, workdir, log)
    return cls(config, variables, restored)

  @property
  def class_names(self) -> tuple[str, ...]:
    return tuple(self.config.data.class_names)

  def probabilities(self, images):
    """float32 [H, W, C] of one image (PIL, path, or uint8 array [H, W(, 3)]); a list (or [B, H, W, 3]
    array) of images gives a list (array) of them."""
    return self._each(images, lambda rgb: predict.predict_probabilities(self._probs_fn, rgb, self.config))

  def __call__(self, images):
    """uint8 [H, W] class indices of one image; a list (or [B, H, W, 3] array) gives a list (array)."""
    return self._each(images, lambda rgb: predict.predict_labels(self._probs_fn, rgb, self.config))

  def _each(self, images, fn):
    if isinstance(images, (list, tuple)):
      return [fn(predict.as_rgb(image)) for image in images]
    if isinstance(images, np.ndarray) and images.ndim == 4:
      return np.stack([fn(predict.as_rgb(image)) for image in images])
    return fn(predict.as_rgb(images))
