"""The training loop: restore or init, train with periodic logs and checkpoints, then evaluate."""
import functools
import json
import os
import signal
import time

import flax
import jax
import ml_collections
from clu import metric_writers, metrics

from deeplab_jax.checkpoint import Checkpointer
from deeplab_jax.data import datasets, pipeline
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import evaluator
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.train import optimizer, steps
from deeplab_jax.train.state import create_train_state


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
  loss: metrics.Average.from_output('loss')
  grad_norm: metrics.Average.from_output('grad_norm')
  learning_rate: metrics.LastValue.from_output('learning_rate')


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict) -> None:
  """Creates workdir (or says why it can't) and writes the resolved config to WORKDIR/config.json."""
  try:
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
      with open(os.path.join(workdir, 'config.json'), 'w') as f:
        f.write(config.to_json(indent=1))
  except OSError as e:
    raise UserError(f'Cannot write to workdir {workdir}: {e.strerror}. Pass a writable --workdir.') from e


class StopRequest:
  """Turns SIGINT / SIGTERM into a flag the loop checks between steps, so it can checkpoint and exit."""

  def __init__(self):
    self.signal = None
    self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

  def _handle(self, signum, frame):
    self.signal = signal.Signals(signum).name

  def restore(self):
    for s, handler in self._previous.items():
      signal.signal(s, handler)


class Progress:
  """Steps/s and ETA, measured from the end of the first (compiling) step."""

  def __init__(self, total: int):
    self.total, self.t0, self.s0 = total, None, None

  def mark(self, step: int):
    self.t0, self.s0 = time.time(), step

  def rate(self, step: int) -> float | None:
    if self.t0 is None or step <= self.s0:
      return None
    return (step - self.s0) / (time.time() - self.t0)

  def line(self, step: int) -> str:
    rate = self.rate(step)
    if rate is None:
      return f'step {step}/{self.total}'
    eta = (self.total - step) / rate
    return f'step {step}/{self.total} {rate:.2f} steps/s ETA {int(eta // 60)}m{int(eta % 60):02d}s'


def init_state(config: ml_collections.ConfigDict, mesh, rng):
  """A fresh, replicated train state of the config's training model."""
  model = build_model(config.model, config.data.num_classes, train=True)
  tx = optimizer.create_optimizer(config.train)
  init = functools.partial(create_train_state, model=model, tx=tx, image_size=config.data.crop_size)
  return jax.jit(init, out_shardings=steps.replicated(mesh))(rng)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
  """Trains config's model for config.train.num_steps (resuming from WORKDIR/checkpoints), evaluates.

  Returns the final evaluation's metrics (also in WORKDIR/eval/<split>_step<N>.json).
  """
  prepare_workdir(workdir, config)
  train_split, eval_split = datasets.load_splits(config.data, log)
  log(f'Data: {len(train_split)} train images ({config.data.train_split}), {len(eval_split)} eval '
      f'images ({config.data.eval_split}) from {config.data.root}')
  mesh = steps.make_mesh()
  shard = pipeline.Shard(jax.process_index(), jax.process_count())
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))
  checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints'), config.train.keep_checkpoints)
  state = checkpointer.restore_or_keep(init_state(config, mesh, init_rng))
  start = int(state.step)
  log(f'Resuming from the checkpoint at step {start}' if start else
      f'Training {config.model.backbone} from scratch on {jax.device_count()} device(s)')
  writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)

  def run_eval(state):
    results = evaluator.evaluate(state.variables(), eval_split, config, mesh, shard, log)
    path = evaluator.write_results(workdir, eval_split.name, int(state.step), results)
    writer.write_scalars(int(state.step), {'eval/miou': results['miou'],
                                           'eval/pixel_accuracy': results['pixel_accuracy']})
    writer.flush()
    log(evaluator.format_results(results))
    log(f'Wrote {path}')
    return results

  state = _train(config, state, start, train_split, mesh, shard, dropout_rng, checkpointer, writer,
                 run_eval, log)
  checkpointer.close()
  return run_eval(state)


def _train(config, state, start, train_split, mesh, shard, dropout_rng, checkpointer, writer, run_eval,
           log):
  """The step loop; on SIGINT/SIGTERM saves the current step and exits with status 130/143."""
  train = config.train
  batches = pipeline.train_batches(train_split, config.data, config.seed, train.batch_size, start, shard)
  step_fn = steps.jit_train_step(mesh, config.data.ignore_label, optimizer.poly_schedule(train),
                                 train.aux_loss_weight)
  progress, collected, stop = Progress(train.num_steps), None, StopRequest()
  try:
    for step in range(start + 1, train.num_steps + 1):
      state, step_metrics = step_fn(state, steps.global_batch(next(batches), mesh), dropout_rng)
      update = TrainMetrics.single_from_model_output(**step_metrics)
      collected = update if collected is None else collected.merge(update)
      if step == start + 1:
        jax.block_until_ready(state)
        progress.mark(step)
      if step % train.log_every == 0 or step == train.num_steps:
        values = collected.compute()
        scalars = {f'train/{k}': v for k, v in values.items()}
        if progress.rate(step):
          scalars['train/steps_per_sec'] = progress.rate(step)
        writer.write_scalars(step, scalars)
        log(f'{progress.line(step)}  loss {values["loss"]:.4f}  lr {values["learning_rate"]:.5f}')
        collected = None
      if step % train.checkpoint_every == 0 or step == train.num_steps:
        checkpointer.save(step, state)
      if train.eval_every and step % train.eval_every == 0 and step != train.num_steps:
        run_eval(state)
      if stop.signal:
        checkpointer.save(step, state, force=True)
        checkpointer.close()
        log(f'{stop.signal}: saved a checkpoint at step {step}; rerun the same command to resume.')
        raise SystemExit(130 if stop.signal == 'SIGINT' else 143)
  finally:
    stop.restore()
    # Free the tf.data iterator while Python is fully alive: destroying it during interpreter shutdown
    # can deadlock on the label decoder's Python callback.
    batches.close()
  return state
