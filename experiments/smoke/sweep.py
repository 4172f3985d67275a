"""Smoke sweep: does ASPP image pooling matter on the tiny quickstart model? (CPU, minutes; the tests').

Not a paper question: it exercises the runner, the run folders and the notebooks end to end on the
built-in synthetic data. The tiny model is the quickstart architecture shrunk like tests/test_main.py's.
"""
BASE_CONFIG = 'configs/quickstart.py'
PAPER_SOURCE = 'none (smoke test on synthetic data)'
PAPER = {}  # no paper figure exists for synthetic data

# Shared by every point: the tiny model and a short run, checkpointing often so a kill can resume.
TINY = {
    'data.crop_size': 48, 'data.eval_size': 96, 'model.resnet.width': 8, 'model.aspp_features': 16,
    'train.batch_size': 4, 'eval.batch_size': 4, 'data.synthetic.num_train': 16,
    'data.synthetic.num_val': 4, 'data.synthetic.min_size': 60, 'data.synthetic.max_size': 90,
    'train.num_steps': 60, 'train.checkpoint_every': 10, 'train.log_every': 10,
}


def get_sweep():
  return {
      'pool': dict(TINY, **{'model.image_pooling': True}),
      'no_pool': dict(TINY, **{'model.image_pooling': False}),
  }
