"""Entry point: python -m deeplab_jax.main --config=configs/quickstart.py [--workdir=DIR] [--config.x=y]."""
import os
import sys

from deeplab_jax import host

if __name__ == '__main__':
  host.reexec_with_huge_pages()  # first: glibc reads its tunables only as a process starts
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')  # TensorFlow feeds data only; keep its logs quiet

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from deeplab_jax import cli, run_config  # noqa: E402

config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/v3_voc.py. Optional for '
                                '--mode=eval/predict/export with --workdir: WORKDIR/config.json.',
                                lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run folder: checkpoints, logs, config.json, eval/. '
                               'Default: runs/<config file name>.')
_MODE = flags.DEFINE_enum('mode', 'train',
                          ['train', 'eval', 'predict', 'export', 'summary', 'inspect_data'],
                          'train: train (resuming if possible), then evaluate. eval: evaluate a '
                          'checkpoint (--config.eval.step, default latest). predict: label PNGs of '
                          '--config.predict.input. export: jax.export file of the inference function. '
                          "summary: the model's parameters and multiply-adds per module at the crop "
                          'size. inspect_data: counts, image sizes and class histogram of the data; '
                          'exit status 1 on bad files.')
_COORDINATOR = flags.DEFINE_string('coordinator_address', '', 'Multi-host: host:port of process 0 '
                                   '(or env JAX_COORDINATOR_ADDRESS); empty: one process.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 0, 'Multi-host: process count; 0: auto-detect.')
_PROCESS_ID = flags.DEFINE_integer('process_id', -1, 'Multi-host: this process; -1: auto-detect.')
_DISTRIBUTED = flags.DEFINE_bool('distributed', False, 'Multi-host with everything auto-detected '
                                 '(TPU pod slices, SLURM, Open MPI).')
_ACCEPT_CHANGE = flags.DEFINE_bool('accept_config_change', False, 'train: resume although the config '
                                   'differs from WORKDIR/config.json (recorded in config_changes.json).')
flags.mark_flag_as_required('config')


def print_summary(config, workdir):
  """--mode=summary: parameters and analytic multiply-adds per module at the crop size."""
  del workdir
  from deeplab_jax.models import summary
  print(summary.config_summary(config))


def inspect_data(config, workdir):
  """--mode=inspect_data: exits 0 when the data is clean, 1 when a file has a problem."""
  del workdir
  from deeplab_jax.data import inspection
  sys.exit(0 if inspection.inspect_data(config) else 1)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # progress and results are printed; library INFO is noise
  from deeplab_jax.evaluate import run  # after flag parsing, so --help is fast
  from deeplab_jax.train import distributed, loop
  modes = {'train': loop.train_and_evaluate, 'eval': run.evaluate_checkpoint,
           'predict': run.predict_images, 'export': run.export_model, 'summary': print_summary,
           'inspect_data': inspect_data}
  distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value, _DISTRIBUTED.value)
  config_file = flags.FLAGS['config'].config_filename
  workdir = _WORKDIR.value or os.path.join('runs', os.path.splitext(os.path.basename(config_file))[0])
  config = cli.load_config()
  if _MODE.value == 'train':
    run_config.check_resume(workdir, config, _ACCEPT_CHANGE.value)
  modes[_MODE.value](config, workdir)


if __name__ == '__main__':
  cli.run(main, run_config.with_stored_config(sys.argv))
