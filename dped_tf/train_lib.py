"""Training runs: `DPEDTrainer` built from a `TrainConfig`, driven by `fit()` with the
callbacks of `dped_tf.callbacks` (docs/method.md §4)."""

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from dped_tf import callbacks as dped_callbacks
from dped_tf import fileio
from dped_tf.callbacks import before_after_grid, evaluate  # noqa: F401 (public here too)
from dped_tf import precision
from dped_tf.configs import TrainConfig
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling import warm_start
from dped_tf.modeling.factory import make_generator
from dped_tf.modeling.trainer import DPEDTrainer
from dped_tf.modeling.vgg import load_content_network

NUM_FIXED_CROPS = 5


def build_trainer(cfg: TrainConfig, vgg=None, warm_start_from_file=True):
  """A compiled `DPEDTrainer` with built networks and optimizers, under `cfg.precision`.

  The generator starts as `cfg.init` says, then from `cfg.init_from` when given (and
  `warm_start_from_file`: a resumed run restores its checkpoint instead); the critic
  and the optimizers always start fresh. Adam's epsilon is `cfg.adam_epsilon` (1e-8,
  the released code's TF1 AdamOptimizer; Keras' default is 1e-7).
  `vgg`: (content network, VGGSource) already loaded, else loaded from `cfg.vgg_weights`.
  Returns (trainer, vgg_source).
  """
  precision.set_policy(cfg.precision)
  content_network, vgg_source = vgg or load_content_network(
      cfg.vgg_weights, seed=cfg.seed, compute_dtype=cfg.vgg_precision)
  keras.utils.set_random_seed(cfg.seed)
  generator, discriminator = make_generator(cfg.model, cfg.norm), Discriminator()
  generator.build((None, None, None, 3))
  if cfg.init == "identity":
    warm_start.identity_init(generator)
  if cfg.init_from and warm_start_from_file:
    warm_start.init_from_file(generator, cfg.init_from)
  discriminator.build((None, cfg.patch_size, cfg.patch_size, 1))
  content_network.build((None, None, None, 3))
  trainer = DPEDTrainer(generator, discriminator, content_network, cfg.loss, seed=cfg.seed,
                        test_batch_size=cfg.batch_size)
  g_opt, d_opt = (precision.wrap_optimizer(keras.optimizers.Adam(cfg.learning_rate, epsilon=cfg.adam_epsilon),
                                           cfg.precision) for _ in range(2))
  g_opt.build(generator.trainable_variables)
  d_opt.build(discriminator.trainable_variables)
  trainer.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=False)
  trainer.built = True  # its networks are; nothing for fit() to build symbolically
  return trainer, vgg_source


def make_checkpoint(trainer):
  """Everything a resumed run needs; the input position follows from `step`
  (`tfrecords.make_dataset(start_record=...)`)."""
  return tf.train.Checkpoint(generator=trainer.generator, discriminator=trainer.discriminator,
                             g_optimizer=trainer.g_optimizer, d_optimizer=trainer.d_optimizer,
                             step=trainer.step, critic_seed=trainer.seed_generator.state)


def make_strategy(name):
  """`default` (one device), `mirrored` (the GPUs of this machine) or `multi_worker`
  (machines listed in TF_CONFIG). Create it before TensorFlow runs anything else."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise DpedError(f"unknown strategy {name!r} (choose from default, mirrored, multi_worker)")


def is_chief(strategy):
  """The worker that writes checkpoints, logs and models: the only one, the `chief`
  task, or worker 0 of a cluster without one."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  return (resolver.task_type == "worker" and resolver.task_id == 0
          and "chief" not in resolver.cluster_spec().as_dict())


def weights_fingerprint(model):
  """A short digest of a model's weights: equal on workers that are in sync."""
  digest = hashlib.sha256()
  for w in model.weights:
    digest.update(np.asarray(w.numpy(), np.float32).tobytes())
  return digest.hexdigest()[:16]


_HELD_LOCKS = {}  # real path of a model_dir -> the open, locked file


@contextlib.contextmanager
def lock_model_dir(model_dir):
  """Holds `model_dir/train.lock` (fcntl.flock, with this process's PID) while the
  context lasts; DpedError naming the folder and the holder's PID when another process
  holds it (nested use in one process is a no-op). The kernel releases the lock of a
  process that dies, even by SIGKILL, so a stale file never blocks a restart."""
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise DpedError(f"{model_dir}: output path exists and is not a folder")
  os.makedirs(model_dir, exist_ok=True)
  key = os.path.realpath(model_dir)
  if key in _HELD_LOCKS:
    yield
    return
  f = open(os.path.join(model_dir, "train.lock"), "a+")  # pylint: disable=consider-using-with
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    f.seek(0)
    holder = f.read().strip() or "unknown"
    f.close()
    raise DpedError(f"{model_dir}: in use by another dped-tf train (PID {holder}); "
                    "one run per --model_dir") from None
  f.seek(0)
  f.truncate()
  f.write(f"{os.getpid()}\n")
  f.flush()
  _HELD_LOCKS[key] = f
  try:
    yield
  finally:
    del _HELD_LOCKS[key]
    f.close()


def file_digest(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def train(cfg: TrainConfig, tfrecord_dir, model_dir, jit_compile=False, vgg=None,
          strategy=None, callbacks=(), progress=None):
  """Runs (or resumes) training through `DPEDTrainer.fit`; returns the last evaluation
  metrics.

  `model_dir` (one run at a time: `train.lock`) receives `checkpoints/` (generator,
  critic, both optimizers, step, critic seed), `logs/` (TensorBoard),
  `images/step_NNNNNN.png` before/after crops, `generator.keras` (latest) plus one per
  evaluation, `metrics.jsonl`, `summary.md` and `run.json` (the resolved configuration,
  the generator's source, the step it started at). All of it is written by the
  callbacks of `dped_tf.callbacks`; `callbacks` are the caller's own, run after them
  (their batch logs hold the step's losses, and `test_*` at evaluations).

  `progress`: Keras' bar (True), plain lines every `cfg.log_every` iterations
  (False); default: the bar on a terminal. SIGTERM or SIGINT: a checkpoint at the step
  reached, then `callbacks.Preempted`.

  `strategy` (default: one device): `cfg.batch_size` is the global batch, split evenly
  over the replicas; each worker reads its own shard of the records. Only the chief
  writes `model_dir`; the other workers save their checkpoints (a collective operation)
  to a temporary folder that is removed. Every worker evaluates (cheap next to training,
  and it keeps them in step); `vgg` must then have been loaded in `strategy.scope()`.
  """
  strategy = strategy or tf.distribute.get_strategy()
  replicas = strategy.num_replicas_in_sync
  if cfg.batch_size % replicas:
    raise DpedError(f"--batch_size {cfg.batch_size} does not split evenly over "
                    f"{replicas} replicas")
  meta = tfrecords.read_meta(tfrecord_dir)
  if meta.get("patch_size", cfg.patch_size) != cfg.patch_size:
    raise DpedError(f"{tfrecord_dir}: patches are {meta['patch_size']} px, "
                    f"--patch_size is {cfg.patch_size}")
  chief = is_chief(strategy)
  with contextlib.ExitStack() as stack:
    if not chief:
      model_dir = tempfile.mkdtemp(prefix="dped-worker-")
      stack.callback(shutil.rmtree, model_dir, ignore_errors=True)
    stack.enter_context(lock_model_dir(model_dir))
    return _train(cfg, tfrecord_dir, model_dir, jit_compile, vgg, strategy, chief, meta,
                  list(callbacks), progress)


def _train(cfg, tfrecord_dir, model_dir, jit_compile, vgg, strategy, chief, meta,
           user_callbacks, progress):
  for sub in ("checkpoints", "images", "logs"):
    os.makedirs(os.path.join(model_dir, sub), exist_ok=True)
  ckpt_dir = os.path.join(model_dir, "checkpoints")
  resuming = tf.train.latest_checkpoint(ckpt_dir) is not None

  with strategy.scope():
    trainer, vgg_source = build_trainer(cfg, vgg, warm_start_from_file=not resuming)
  trainer.jit_compile = jit_compile
  warnings = [vgg_source.warning] if vgg_source.warning else []
  warnings += [f"training data is the embedded sample ({meta['sample']}), not DPED"
               ] if meta.get("sample") else []
  for w in warnings:
    logging.warning(w)

  checkpoint = make_checkpoint(trainer)
  manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=3)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info("Resuming from %s at step %d", manager.latest_checkpoint, int(trainer.step.numpy()))
    print(f"Resuming from step {int(trainer.step.numpy())} ({manager.latest_checkpoint})")
  start = int(trainer.step.numpy())
  if start >= cfg.iterations:
    print(f"Nothing to do: step {start} >= --iterations {cfg.iterations}")
    return {}

  def train_input(ctx):
    # A resumed run goes on with the records an uninterrupted one would have read next.
    per_replica = ctx.get_per_replica_batch_size(cfg.batch_size)
    local_replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
    return tfrecords.make_dataset(
        tfrecord_dir, "train", per_replica, cfg.patch_size, training=True,
        shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed, num_shards=ctx.num_input_pipelines,
        shard_index=ctx.input_pipeline_id, start_record=start * 2 * per_replica * local_replicas)

  train_ds = strategy.distribute_datasets_from_function(train_input)
  test_ds = tfrecords.make_dataset(tfrecord_dir, "test", cfg.batch_size, cfg.patch_size,
                                   training=False)
  fixed_phone, fixed_dslr = next(iter(test_ds.unbatch().batch(NUM_FIXED_CROPS)))

  source = {"init": cfg.init, "init_from": None}
  notes = []
  if cfg.init_from:
    source["init_from"] = {"path": os.path.abspath(cfg.init_from),
                           "sha256": file_digest(cfg.init_from)
                           if os.path.isfile(cfg.init_from) else None,
                           "used": not resuming}
    notes.append(f"Generator started from {os.path.abspath(cfg.init_from)}"
                 + (" (this run resumed from its checkpoints)" if resuming else ""))
  fileio.atomic_write_bytes(os.path.join(model_dir, "run.json"), json.dumps(
      {"config": dataclasses.asdict(cfg), "generator_source": source, "warnings": warnings,
       "vgg_source": dataclasses.asdict(vgg_source), "data": tfrecord_dir,
       "start_step": start}, indent=1).encode())

  last = cfg.iterations
  board = dped_callbacks.TensorBoard(os.path.join(model_dir, "logs"), cfg.log_every, last,
                                     warnings)
  metrics_log = dped_callbacks.MetricsLog(model_dir, cfg, warnings, notes)
  preemption = dped_callbacks.PreemptionCheckpoint(manager, strategy)
  progress = sys.stdout.isatty() if progress is None else progress
  steps = [
      preemption,
      dped_callbacks.Checkpoint(manager, cfg.checkpoint_every, last),
      dped_callbacks.Evaluation(test_ds, cfg.eval_every, last, cfg.eval_batches,
                                jit_compile),
      board,
      dped_callbacks.BeforeAfterGrid(fixed_phone, fixed_dslr,
                                     os.path.join(model_dir, "images"), board.writer),
      dped_callbacks.GeneratorExport(model_dir),
      metrics_log,
      dped_callbacks.StepProgbar(last) if progress
      else dped_callbacks.ProgressLines(cfg.log_every, last),
  ]
  if not chief:  # workers keep in step (checkpoints, evaluation) but write nothing
    steps = steps[:3]
  trainer.fit(train_ds, steps_per_epoch=last - start, epochs=1, shuffle=False,
              callbacks=steps + user_callbacks, verbose=0)
  if preemption.stopped:
    raise dped_callbacks.Preempted(*preemption.stopped)
  print(f"Done at step {int(trainer.step.numpy())}; generator weights "
        f"{weights_fingerprint(trainer.generator)}")
  return metrics_log.last
