"""Inference tricks: output stride 8 at eval, multi-scale inputs (0.5..1.75) and left-right flip: v3 R-101.

Each point trains the same model (same seed and recipe) and evaluates it under its own eval setting.
Cheaper when compute is short: train one point, then add the settings to one checkpoint with
python -m deeplab_jax.main --mode=eval --config.eval.extra_settings=... (see the README).
"""
BASE_CONFIG = 'configs/v3_voc.py'
PAPER_SOURCE = 'DeepLabv3 paper'
PAPER = {'eval_os16': 77.21, 'eval_os8': 78.51, 'eval_os8_ms': 79.45, 'eval_os8_ms_flip': 79.77}

MS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)


def get_sweep():
  return {
      'eval_os16': {'model.eval_output_stride': 16},
      'eval_os8': {'model.eval_output_stride': 8},
      'eval_os8_ms': {'model.eval_output_stride': 8, 'eval.scales': MS},
      'eval_os8_ms_flip': {'model.eval_output_stride': 8, 'eval.scales': MS, 'eval.flip': True},
  }
