"""The training loop: restore or init, train with periodic logs and checkpoints, then evaluate."""
import dataclasses
import functools
import os
import signal
import time
from typing import Callable

from clu import metric_writers, metrics
import flax
import jax
import ml_collections

from deeplab_jax import checkpoint, sharding
from deeplab_jax.checkpoint import Checkpointer
from deeplab_jax.data import datasets, pipeline
from deeplab_jax.errors import UserError
from deeplab_jax.evaluate import evaluator
from deeplab_jax.models.deeplab import build_model
from deeplab_jax.train import distributed, optimizer, precise_bn, steps
from deeplab_jax.train import state as state_lib


@dataclasses.dataclass(frozen=True)
class Run:
  """What the parts of one training run share: where it writes, the devices, how it logs."""
  config: ml_collections.ConfigDict
  workdir: str
  mesh: jax.sharding.Mesh
  shard: pipeline.Shard
  checkpointer: Checkpointer
  writer: metric_writers.MetricWriter
  log: Callable[..., None]


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
  loss: metrics.Average.from_output('loss')
  grad_norm: metrics.Average.from_output('grad_norm')
  learning_rate: metrics.LastValue.from_output('learning_rate')


class StopRequest:
  """Turns SIGINT / SIGTERM into a flag the loop checks between steps, so it can checkpoint and exit."""

  def __init__(self):
    self.number = 0  # the signal received (0: none)
    self._previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

  def _handle(self, signum, frame):
    self.number = max(self.number, signum)  # SIGTERM (15) outranks SIGINT (2)

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
  """A fresh train state of the config's training model, replicated over mesh."""
  return state_lib.init_state(config, sharding.replicated(mesh), rng)


def initial_state(config: ml_collections.ConfigDict, mesh, rng, log=print):
  """A fresh state, with params and batch_stats from train.init_checkpoint when one is given.

  The optimizer state and step start afresh (a new stage of training, e.g. v3's OS 8 fine-tuning);
  last layers of another class count are re-initialised when train.reinit_head_on_mismatch allows.
  """
  state = init_state(config, mesh, rng)
  if not config.train.init_checkpoint:
    return state
  loaded, _ = checkpoint.read_variables(config.train.init_checkpoint)
  prefixes = (optimizer.last_layer_prefixes(state.params, config.train.last_layers)
              if config.train.reinit_head_on_mismatch else ())
  merged = checkpoint.merge_variables(state.variables(), loaded, prefixes)
  merged = jax.device_put(merged, sharding.replicated(mesh))
  log(f'Initialised from {config.train.init_checkpoint}')
  return state.replace(params=merged['params'], batch_stats=merged['batch_stats'])


def make_front(config: ml_collections.ConfigDict, mesh):
  """The jit or pmap front of the train step, by config.parallelism."""
  options = steps.step_options(config, optimizer.poly_schedule(config.train))
  steps.check_batch_size(config.train.batch_size, config.train.grad_accum_steps, mesh.devices.size)
  if config.parallelism == 'jit':
    return steps.JitFront(mesh, options)
  if config.parallelism == 'pmap':
    model = build_model(config, train=True, axis_name=steps.PMAP_AXIS)
    return steps.PmapFront(mesh, options, model)
  raise UserError(f"Unknown parallelism {config.parallelism!r}; known: 'jit', 'pmap'.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, log=print) -> dict:
  """Trains config's model for config.train.num_steps (resuming from WORKDIR/checkpoints), evaluates.

  Every process trains on its own data shard; process 0 alone logs and writes files.
  Returns the final evaluation's metrics (also in WORKDIR/eval/<split>_step<N>.json).
  """
  if jax.process_index() > 0:
    log = lambda *_: None  # noqa: E731
  build_model(config, train=True)  # a bad model config stops here, before orbax starts its threads
  checkpoint.prepare_workdir(workdir, config)
  train_split, eval_split = datasets.load_splits(config.data, log)
  log(f'Data: {len(train_split)} train images ({config.data.train_split}), {len(eval_split)} eval '
      f'images ({config.data.eval_split}) from {config.data.root}')
  mesh = sharding.make_mesh()
  shard = pipeline.Shard(jax.process_index(), jax.process_count())
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))
  checkpointer = Checkpointer(os.path.join(workdir, 'checkpoints'), config.train.keep_checkpoints,
                              config.train.keep_best_checkpoint)
  try:
    if checkpointer.all_steps() or checkpointer.unfinished:  # step 0 too: a workdir made by
      # deeplab_jax.convert holds converted weights there. Damaged newer steps are named and skipped.
      abstract = state_lib.abstract_state(config, sharding.replicated(mesh), init_rng)
      state = checkpointer.restore_or_keep(abstract, log)
    resuming = checkpointer.latest_step() is not None
    if not resuming:
      state = initial_state(config, mesh, init_rng, log)
    start = int(state.step)
    if resuming:
      log(f'Resuming from the checkpoint at step {start}')
    else:
      origin = f'from {config.train.init_checkpoint}' if config.train.init_checkpoint else 'from scratch'
      log(f'Training {config.model.backbone} {origin} on {jax.device_count()} device(s)')
    writer = metric_writers.create_default_writer(workdir, just_logging=jax.process_index() > 0)
    run = Run(config, workdir, mesh, shard, checkpointer, writer, log)
    run_eval = functools.partial(_evaluate, run, eval_split)
    state = _train(run, state, train_split, dropout_rng=dropout_rng, run_eval=run_eval)
  finally:
    checkpointer.close()  # lets pending async saves finish, also when training stopped on an error
  return _evaluate_saved(run_eval, state)


def _evaluate_saved(run_eval: Callable, state) -> dict:
  """run_eval(state) for a state already saved; a failure says that its checkpoint is safe."""
  step = int(state.step)
  try:
    return run_eval(state)
  except Exception as e:  # noqa: BLE001 -- out of memory at eval size, a bad eval file, ...
    cause = str(e).splitlines()[0][:300] if str(e) else ''
    raise UserError(f'Evaluation at step {step} failed ({type(e).__name__}: {cause}). The checkpoint '
                    f'of step {step} was saved before evaluating: fix the cause (out of memory: lower '
                    'eval.batch_size or data.eval_size) and rerun to resume from it.') from e


def _evaluate(run: Run, split, state) -> dict:
  """Evaluates state on split; writes WORKDIR/eval/, TensorBoard scalars and the log."""
  results = evaluator.evaluate(state.variables(), split, run.config, run.mesh, run.shard, run.log)
  path = evaluator.write_results(run.workdir, split.name, int(state.step), results)
  run.writer.write_scalars(int(state.step), {'eval/miou': results['miou'],
                                             'eval/pixel_accuracy': results['pixel_accuracy']})
  run.writer.flush()
  run.log(evaluator.format_results(results))
  run.log(f'Wrote {path}')
  return results


class Profile:
  """A jax.profiler trace of steps [start, stop) to WORKDIR/profile (TensorBoard's profile tab, Perfetto)."""

  def __init__(self, steps_range, workdir: str):
    self.start, self.stop = steps_range
    self.directory = os.path.join(workdir, 'profile')
    self.active = False

  def before(self, step: int):
    if self.start < self.stop and step == self.start and jax.process_index() == 0:
      jax.profiler.start_trace(self.directory)
      self.active = True

  def after(self, step: int, state):
    if self.active and step + 1 >= self.stop:
      jax.block_until_ready(state)  # the trace must contain the last step's device work
      jax.profiler.stop_trace()
      self.active = False


def _check_finite(step: int | None, step_metrics: dict | None, checkpointer: Checkpointer) -> None:
  """UserError if step's loss or gradient was inf or NaN (reads one device scalar)."""
  if step_metrics is None or bool(step_metrics['finite']):
    return
  latest = checkpointer.latest_step()
  good = ('No checkpoint was saved before it' if latest is None else
          f'The latest checkpoint (step {latest}) is the last good state')
  raise UserError(f'Non-finite loss or gradient at step {step} (loss {float(step_metrics["loss"])}); '
                  f'stopped without saving it. {good}. Lower train.base_lr, add train.warmup_steps, or '
                  'check the data.')


class NextBatch:
  """The batch of each next step; a bad file (also one damaged after the start) stops the run naming it.

  On several processes the one that hits it must not stop alone (the others would wait in the next
  step's collectives): it keeps the error, hands out its last good batch once more, and votes
  `flag()` for the stop, which every process reads one step later, before saving anything. A run's
  first batch has no batch before it: its failure is agreed on before the first step.
  """

  def __init__(self, batches: pipeline.Batches, checkpointer: Checkpointer):
    self.batches, self.checkpointer = batches, checkpointer
    self.error, self.step, self.last = None, None, None

  def __call__(self, step: int) -> dict:
    """The batch of step + 1."""
    if self.error is None:
      try:
        self.last = next(self.batches)
      except UserError as e:
        self.error, self.step = e, step + 1
        if jax.process_count() == 1:
          raise self.stopped() from None
    return self.last  # None if the first batch failed: _train's start-up agreement stops every process

  def flag(self, signal_number: int) -> int:
    """This process's StopVote flag: its data error, else the signal it got (0: none)."""
    return distributed.data_error_flag() if self.error else signal_number

  def stopped(self, agreed: int = 0) -> UserError:
    """The error to stop with: this process's bad file, or the process that agreed (a StopVote
    answer) names."""
    latest = self.checkpointer.latest_step()
    fix = 'replace or remove the file (or set --config.data.skip_bad_examples=True) and rerun'
    resume = (f'No checkpoint was saved yet: {fix}.' if latest is None else
              f'The latest checkpoint is step {latest}: {fix} to resume.')
    if self.error is not None:
      return UserError(f'{self.error} (read for step {self.step}). {resume}')
    process = agreed - distributed.DATA_ERROR
    return UserError(f'Process {process} of {jax.process_count()} could not read its batch for the '
                     'next step (bad input data; its own error names the file), so all processes '
                     f'stopped. {resume}')


def _precise_batch_norm(run: Run, state, batches: pipeline.Batches):
  """state with its BatchNorm statistics averaged over the next train.precise_bn_batches batches of the
  training stream (train/precise_bn.py): what the last checkpoint then holds and everything after it
  (final eval, --mode=eval/predict/export) uses."""
  variables = precise_bn.recalibrate(run.config, state.variables(), batches,
                                     run.config.train.precise_bn_batches, run.mesh,
                                     seed=run.config.seed, log=run.log)
  return state.replace(batch_stats=variables['batch_stats'])


def _train(run: Run, state, train_split, *, dropout_rng: jax.Array, run_eval: Callable):
  """The step loop from state.step; on SIGINT/SIGTERM saves the current step and exits with status
  130/143 (on several processes: all at the same step, the first at which every one knows of it).

  The host never waits for a step it has just dispatched: the next batch is put on the devices while
  the step runs, and a step's non-finite flag is read after the following step is dispatched (or at
  once, before that step's state is logged or saved). So a non-finite loss or gradient raises UserError
  before any state it produced can be saved.
  """
  config, checkpointer, writer, log = run.config, run.checkpointer, run.writer, run.log
  train, start = config.train, int(state.step)
  batches = pipeline.train_batches(train_split, config.data, config.seed, train.batch_size, start,
                                   run.shard, as_uint8=True)
  front = make_front(config, run.mesh)
  progress, collected, stop = Progress(train.num_steps), None, StopRequest()
  vote = distributed.StopVote(run.mesh)
  profile = Profile(tuple(train.profile_steps), run.workdir)
  device_state = front.put_state(state)
  previous = (None, None)  # (step, metrics) whose finite flag is still unread
  read = NextBatch(batches, checkpointer)
  try:
    first = read(start) if start < train.num_steps else None  # None: a process's first batch failed
    next_batch = None if first is None else front.put_batch(first)
    if jax.process_count() > 1 and start < train.num_steps:
      # Compile first, then start together: a process must join the step's first collective soon
      # after the others (gloo on CPU waits 30 s), and compile times differ between hosts. A process
      # that could not read its first batch says so here, and all stop.
      if next_batch is not None:
        front.step.lower(device_state, next_batch, dropout_rng).compile()
      agreed = distributed.agree_max(f'train_from_{start}', read.flag(0))
      if agreed >= distributed.DATA_ERROR:
        raise read.stopped(agreed)
    for step in range(start + 1, train.num_steps + 1):
      profile.before(step)
      with jax.profiler.StepTraceAnnotation('train', step_num=step):
        device_state, step_metrics = front.step(device_state, next_batch, dropout_rng)
      if step < train.num_steps:
        next_batch = front.put_batch(read(step))
      profile.after(step, device_state)
      step_metrics = front.metrics(step_metrics)
      _check_finite(*previous, checkpointer)
      previous = (step, step_metrics)
      update = TrainMetrics.single_from_model_output(
          **{k: v for k, v in step_metrics.items() if k != 'finite'})
      collected = update if collected is None else collected.merge(update)
      if step == start + 1:
        progress.mark(step)
      if step % train.log_every == 0 or step == train.num_steps:
        _check_finite(*previous, checkpointer)
        values = collected.compute()
        scalars = {f'train/{k}': v for k, v in values.items()}
        if progress.rate(step):
          scalars['train/steps_per_sec'] = progress.rate(step)
        writer.write_scalars(step, scalars)
        bad = getattr(batches, 'num_bad', 0)  # tests may feed a plain generator
        skipped = f'  {bad} bad examples skipped' if bad else ''
        log(f'{progress.line(step)}  loss {values["loss"]:.4f}  lr {values["learning_rate"]:.5f}{skipped}')
        collected = None
      evaluate = train.eval_every and step % train.eval_every == 0 and step != train.num_steps
      # A signal number or a data error; on every process the same, at the same step.
      stopping = vote(read.flag(stop.number))
      if stopping >= distributed.DATA_ERROR:  # before this step (trained on a repeated batch) is saved
        raise read.stopped(stopping)
      if evaluate or step % train.checkpoint_every == 0 or step == train.num_steps or stopping:
        _check_finite(*previous, checkpointer)
        state = front.get_state(device_state)
        if step == train.num_steps and train.precise_bn_batches:
          state = _precise_batch_norm(run, state, batches)
        checkpointer.save(step, state, force=bool(stopping))  # before evaluating: eval may fail
        if evaluate:
          results = _evaluate_saved(run_eval, state)
          checkpointer.add_metrics(step, {checkpoint.BEST_METRIC: results['miou']})
      if stopping:
        checkpointer.close()
        where = f' (all {jax.process_count()} processes)' if jax.process_count() > 1 else ''
        log(f'{signal.Signals(stopping).name}: saved a checkpoint at step {step}{where}; rerun the '
            'same command to resume.')
        raise SystemExit(128 + stopping)
    _check_finite(*previous, checkpointer)
  finally:
    stop.restore()
    if profile.active:
      jax.profiler.stop_trace()
    # Free the tf.data iterator while Python is fully alive: destroying it during interpreter shutdown
    # can deadlock on the label decoder's Python callback.
    batches.close()
  return front.get_state(device_state)
