"""Keras callbacks for `DPEDTrainer.fit()`: what a run does that Keras' own callbacks
do not (docs/method.md §4).

`training.loop` runs `fit()` in epochs that end at the multiples of `eval_every` and at
the last iteration: `Evaluation` adds `test_*` entries to each epoch's logs and the
callbacks after it (TensorBoard, images, models, `metrics.jsonl`) act on them; Keras'
own progress output (`verbose`) prints them. Checkpoints (`every` iterations, in the
`tf.train.Checkpoint` layout that resumes earlier folders) and TensorBoard's training
scalars (at the run's iteration, not fit()'s batch count: Keras' `ModelCheckpoint` and
`TensorBoard` restart counting at each `fit()`) go by `trainer.step`, the checkpointed
counter, so a resumed run keeps its schedule.
"""

import dataclasses
import json
import os
import signal
import threading
import time

import keras
import tensorflow as tf

from dped_tf import fileio

TEST_PREFIX = "test_"


def current_step(trainer):
  return int(trainer.step.numpy())


def test_metrics(logs):
  """The evaluation results in an epoch's logs ({} where there was no evaluation)."""
  return {k[len(TEST_PREFIX):]: v for k, v in (logs or {}).items()
          if k.startswith(TEST_PREFIX)}


def due(step, every, last_step):
  return step % every == 0 or step == last_step


def evaluate(trainer, dataset, test_fn=None, max_batches=0):
  """Mean test metrics (both test protocols of `metrics.TestMetrics`, and the losses) over
  `dataset` (all of it when `max_batches` is 0), through `trainer.test_step`."""
  test_fn = test_fn or trainer.test_step
  for tracker in trainer.eval_trackers.values():
    tracker.reset_state()
  logs = {}
  for i, batch in enumerate(dataset):
    if max_batches and i >= max_batches:
      break
    logs = test_fn(batch)
  return {name: float(value) for name, value in logs.items()}


def before_after_grid(generator, phone, dslr):
  """Rows of [phone | enhanced | DSLR] crops as one uint8 image."""
  enhanced = generator(phone, training=False)
  rows = tf.concat([phone, tf.clip_by_value(enhanced, 0.0, 1.0), dslr], axis=2)
  grid = tf.reshape(rows, [-1, rows.shape[2], 3])
  return tf.image.convert_image_dtype(grid, tf.uint8, saturate=True)


class Checkpoint(keras.callbacks.Callback):
  """Saves `manager`'s checkpoint every `every` iterations and at `last_step`. On every
  worker of a cluster (the save is collective; the manager of a non-chief worker
  points at a scratch folder)."""

  def __init__(self, manager, every, last_step):
    super().__init__()
    self.manager, self.every, self.last_step = manager, every, last_step

  def on_train_batch_end(self, batch, logs=None):
    step = current_step(self.model)
    if due(step, self.every, self.last_step):
      self.manager.save(checkpoint_number=step)


class Preempted(Exception):
  """Training stopped on a signal after saving a checkpoint at `step`."""

  def __init__(self, signum, step):
    super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; "
                     "checkpoint saved, run the same command again to resume")
    self.signum, self.step = signum, step


class PreemptionCheckpoint(keras.callbacks.Callback):
  """SIGTERM (how schedulers and cloud machines preempt) or SIGINT: the run saves a
  checkpoint at the iteration it has reached and stops; `stopped` then holds
  (signal number, step) and `training.loop` raises `Preempted`. A second signal
  gets the default action (a stuck run can still be interrupted).

  On a cluster (`--strategy multi_worker`) the workers must agree on the step at which
  all of them save (the save is collective): TensorFlow's
  `tf.distribute.experimental.PreemptionCheckpointHandler` does that through the
  coordination service, and is used there, with our signal flag as its termination
  watcher (so SIGINT counts too). On one worker it is not used: it probes the GCE
  metadata server on creation (up to 5 s without network), does nothing at all on a
  GCE CPU machine ("does not support usage with TPU or CPU device on GCP"), watches
  SIGTERM only, and saves one step after the signal; with no peers to agree with, the
  flag is checked here after every step and the checkpoint saved at once.
  """

  def __init__(self, manager, strategy=None):
    super().__init__()
    self.manager = manager
    self.strategy = strategy
    self.stopped = None
    self._signal = threading.Event()
    self._signum = None
    self._previous = {}
    self._handler = None

  def _on_signal(self, signum, frame):
    del frame
    if self._signal.is_set():  # a second signal: the default action, at once
      signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
      signal.raise_signal(signum)
      return
    self._signum = signum
    self._signal.set()

  def on_train_begin(self, logs=None):
    if threading.current_thread() is threading.main_thread():
      for signum in (signal.SIGTERM, signal.SIGINT):
        self._previous[signum] = signal.signal(signum, self._on_signal)
    resolver = getattr(self.strategy, "cluster_resolver", None)
    if self._handler is None and resolver is not None and resolver.cluster_spec().jobs:
      self._handler = tf.distribute.experimental.PreemptionCheckpointHandler(
          resolver, self.manager, termination_config=tf.distribute.experimental.TerminationConfig(
              termination_watcher_fn=self._signal.is_set, exit_fn=self._stop, grace_period=0))

  def _stop(self):
    self.stopped = (self._signum or signal.SIGTERM, current_step(self.model))
    self.model.stop_training = True

  def on_train_batch_end(self, batch, logs=None):
    if self._handler is not None:
      self._handler.save_checkpoint_if_preempted(checkpoint_number=current_step(self.model))
    elif self._signal.is_set() and self.stopped is None:
      self.manager.save(checkpoint_number=current_step(self.model))
      self._stop()

  def on_train_end(self, logs=None):
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}


class Evaluation(keras.callbacks.Callback):
  """At the end of each epoch: the Table-2 metrics on `dataset` (`max_batches` of it,
  0: all), added to the epoch's logs as `test_<name>`, with
  `test_seconds_per_iteration` (wall time per iteration since training began). Not
  after an epoch cut short by `stop_training` (a signal, a caller's callback)."""

  def __init__(self, dataset, max_batches=0, jit_compile=False):
    super().__init__()
    self.dataset, self.max_batches, self.jit_compile = dataset, max_batches, jit_compile
    self._t0 = None

  def on_train_begin(self, logs=None):
    if self._t0 is None:  # the first of the run's fit() calls
      self._test_fn = tf.function(self.model.test_step, jit_compile=self.jit_compile)
      self._start, self._t0 = current_step(self.model), time.perf_counter()

  def on_epoch_end(self, epoch, logs=None):
    if self.model.stop_training or logs is None:
      return
    step = current_step(self.model)
    metrics = evaluate(self.model, self.dataset, self._test_fn, self.max_batches)
    metrics["seconds_per_iteration"] = (time.perf_counter() - self._t0) / (step - self._start)
    logs.update({TEST_PREFIX + k: v for k, v in metrics.items()})


class TensorBoard(keras.callbacks.Callback):
  """TensorBoard under `log_dir`: `train/<loss>` (the iteration's values) every `every`
  iterations and at `last_step`; `test/<metric>` and the warnings at each evaluation.
  `writer` is shared with `BeforeAfterGrid`."""

  def __init__(self, log_dir, every, last_step, warnings=()):
    super().__init__()
    self.writer = tf.summary.create_file_writer(log_dir)
    self.every, self.last_step, self.warnings = every, last_step, list(warnings)

  def on_train_batch_end(self, batch, logs=None):
    step = current_step(self.model)
    if due(step, self.every, self.last_step):
      with self.writer.as_default(step=step):
        for name, value in logs.items():
          tf.summary.scalar(f"train/{name}", value)

  def on_epoch_end(self, epoch, logs=None):
    tests = test_metrics(logs)
    if not tests:
      return
    with self.writer.as_default(step=current_step(self.model)):
      for name, value in tests.items():
        tf.summary.scalar(f"test/{name}", value)
      for w in self.warnings:
        tf.summary.text("warnings", w)
    self.writer.flush()

  def on_train_end(self, logs=None):
    self.writer.flush()


class BeforeAfterGrid(keras.callbacks.Callback):
  """At each evaluation: `images_dir/step_NNNNNN.png`, rows of [phone | enhanced | DSLR]
  for the fixed test crops, also to TensorBoard when `writer` is given."""

  def __init__(self, phone, dslr, images_dir, writer=None):
    super().__init__()
    self.phone, self.dslr, self.images_dir, self.writer = phone, dslr, images_dir, writer

  def on_epoch_end(self, epoch, logs=None):
    if not test_metrics(logs):
      return
    step = current_step(self.model)
    grid = before_after_grid(self.model.generator, self.phone, self.dslr)
    os.makedirs(self.images_dir, exist_ok=True)
    fileio.atomic_write_bytes(os.path.join(self.images_dir, f"step_{step:06d}.png"),
                              tf.io.encode_png(grid).numpy())
    if self.writer is not None:
      with self.writer.as_default(step=step):
        tf.summary.image("phone | enhanced | DSLR", grid[None], step=step)


class GeneratorExport(keras.callbacks.Callback):
  """At each evaluation: the generator as `generator_NNNNNN.keras` and `generator.keras`
  (the latest) in `model_dir`, each written atomically."""

  def __init__(self, model_dir):
    super().__init__()
    self.model_dir = model_dir

  def on_epoch_end(self, epoch, logs=None):
    if not test_metrics(logs):
      return
    step, generator = current_step(self.model), self.model.generator
    fileio.save_keras_atomic(generator, os.path.join(self.model_dir,
                                                     f"generator_{step:06d}.keras"))
    fileio.save_keras_atomic(generator, os.path.join(self.model_dir, "generator.keras"))


class MetricsLog(keras.callbacks.Callback):
  """At each evaluation: one line `{"step", <metrics>, "warnings"}` appended to
  `model_dir/metrics.jsonl` (a step already there, from a run stopped before its next
  checkpoint, is replaced) and `summary.md` rewritten, the metrics beside `baseline`'s
  (the unprocessed phone patches'); `last` holds the metrics."""

  def __init__(self, model_dir, config, warnings=(), notes=(), baseline=None):
    super().__init__()
    self.model_dir, self.config = model_dir, config
    self.warnings, self.notes = list(warnings), list(notes)
    self.baseline = baseline or {}
    self.last = {}

  def on_epoch_end(self, epoch, logs=None):
    metrics = test_metrics(logs)
    if not metrics:
      return
    step, self.last = current_step(self.model), metrics
    path = os.path.join(self.model_dir, "metrics.jsonl")
    lines = []
    if os.path.exists(path):
      with open(path) as f:
        lines = [l for l in f if l.strip() and json.loads(l).get("step", -1) < step]
    lines.append(json.dumps({"step": step, **metrics, "warnings": self.warnings}) + "\n")
    fileio.atomic_write_bytes(path, "".join(lines).encode())
    self._write_summary(step, metrics)

  def _write_summary(self, step, metrics):
    cfg = self.config
    lines = [f"**WARNING: {w}**\n" for w in self.warnings] + [f"{n}\n" for n in self.notes]
    lines += [f"# dped_tf training run, step {step} of {cfg.iterations}\n",
              "| metric | model | phone (unprocessed) |", "|---|---|---|"]
    base = {k: format(v, ".5g") for k, v in self.baseline.items()}
    lines += [f"| {k} | {v:.5g} | {base.get(k, '')} |" for k, v in metrics.items()]
    lines += ["", "```json", json.dumps(dataclasses.asdict(cfg), indent=1), "```", ""]
    fileio.atomic_write_bytes(os.path.join(self.model_dir, "summary.md"),
                              "\n".join(lines).encode())


class ProgressLines(keras.callbacks.Callback):
  """Off a terminal (Keras' `verbose=2` prints a line per epoch, hours apart on a CPU): a
  plain line of the iteration's losses and time every `every` iterations and at the end."""

  def __init__(self, every, last_step):
    super().__init__()
    self.every, self.last_step, self._t0 = every, last_step, None

  def on_train_begin(self, logs=None):
    if self._t0 is None:  # the first of the run's fit() calls
      self._t0, self._start = time.perf_counter(), current_step(self.model)

  def on_train_batch_end(self, batch, logs=None):
    if due(step := current_step(self.model), self.every, self.last_step):
      rate = (time.perf_counter() - self._t0) / max(1, step - self._start)
      losses = " ".join(f"{k}={float(v):.4g}" for k, v in (logs or {}).items())
      print(f"step {step}/{self.last_step} {losses} ({rate:.3g} s/iteration)", flush=True)
