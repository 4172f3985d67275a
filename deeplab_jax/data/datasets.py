"""The dataset named by a config: its train and eval splits."""
import ml_collections

from deeplab_jax.data import synthetic, voc
from deeplab_jax.errors import UserError


def load_splits(data_cfg: ml_collections.ConfigDict, log=print) -> tuple[voc.Split, voc.Split]:
  """(train, eval) splits of data_cfg.dataset; the synthetic dataset is generated on first use."""
  if data_cfg.dataset == 'synthetic':
    synthetic.ensure(data_cfg.root, log=log, **data_cfg.synthetic.to_dict())
  elif data_cfg.dataset != 'voc':
    raise UserError(f"Unknown dataset {data_cfg.dataset!r} (config data.dataset); known: 'voc', "
                    "'synthetic'.")
  return (voc.read_split(data_cfg.root, data_cfg.train_split, data_cfg.label_dir),
          voc.read_split(data_cfg.root, data_cfg.eval_split, data_cfg.label_dir))
