"""The training loop around `DPEDTrainer`: checkpoints, evaluation, logs (docs/method.md §4)."""

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from dped_tf import fileio
from dped_tf import precision
from dped_tf.configs import TrainConfig
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling import warm_start
from dped_tf.modeling.baselines import make_generator
from dped_tf.modeling.trainer import DPEDTrainer
from dped_tf.modeling.vgg import load_content_network

NUM_FIXED_CROPS = 5


def build_trainer(cfg: TrainConfig, vgg=None):
  """A compiled `DPEDTrainer` with built networks and optimizers, under `cfg.precision`.

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
  discriminator.build((None, cfg.patch_size, cfg.patch_size, 1))
  content_network.build((None, None, None, 3))
  trainer = DPEDTrainer(generator, discriminator, content_network, cfg.loss, seed=cfg.seed,
                        test_batch_size=cfg.batch_size)
  g_opt, d_opt = (precision.wrap_optimizer(keras.optimizers.Adam(cfg.learning_rate),
                                           cfg.precision) for _ in range(2))
  g_opt.build(generator.trainable_variables)
  d_opt.build(discriminator.trainable_variables)
  trainer.compile(g_optimizer=g_opt, d_optimizer=d_opt)
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


def evaluate(trainer, dataset, test_fn, max_batches=0):
  """Mean test metrics over `dataset` (all of it when `max_batches` is 0)."""
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


def _write_summary(model_dir, cfg, warnings, step, metrics):
  lines = [f"**WARNING: {w}**\n" for w in warnings]
  lines += [f"# dped_tf training run, step {step} of {cfg.iterations}\n",
            "| metric | value |", "|---|---|"]
  lines += [f"| {k} | {v:.5g} |" for k, v in metrics.items()]
  lines += ["", "```json", json.dumps(dataclasses.asdict(cfg), indent=1), "```", ""]
  fileio.atomic_write_bytes(os.path.join(model_dir, "summary.md"), "\n".join(lines).encode())


def train(cfg: TrainConfig, tfrecord_dir, model_dir, jit_compile=False, vgg=None,
          strategy=None):
  """Runs (or resumes) training; returns the last evaluation metrics.

  `model_dir` receives `checkpoints/` (generator, critic, both optimizers, step, critic
  seed), `logs/` (TensorBoard), `images/step_NNNNNN.png` before/after crops,
  `generator.keras` (latest) plus one per evaluation, `metrics.jsonl`, `summary.md`.

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
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise DpedError(f"{model_dir}: output path exists and is not a folder")
  chief = is_chief(strategy)
  with contextlib.ExitStack() as stack:
    if not chief:
      scratch = tempfile.mkdtemp(prefix="dped-worker-")
      stack.callback(shutil.rmtree, scratch, ignore_errors=True)
    return _train(cfg, tfrecord_dir, model_dir if chief else scratch, jit_compile, vgg,
                  strategy, chief, meta)


def _train(cfg, tfrecord_dir, model_dir, jit_compile, vgg, strategy, chief, meta):
  for sub in ("checkpoints", "images", "logs"):
    os.makedirs(os.path.join(model_dir, sub), exist_ok=True)

  with strategy.scope():
    trainer, vgg_source = build_trainer(cfg, vgg)
  warnings = [vgg_source.warning] if vgg_source.warning else []
  warnings += [f"training data is the embedded sample ({meta['sample']}), not DPED"
               ] if meta.get("sample") else []
  for w in warnings:
    logging.warning(w)

  checkpoint = make_checkpoint(trainer)
  manager = tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, "checkpoints"),
                                       max_to_keep=3)
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
  step_fn = tf.function(trainer.train_step, jit_compile=jit_compile)
  train_fn = tf.function(lambda batch: strategy.experimental_local_results(
      strategy.run(step_fn, args=(batch,)))[0])
  test_fn = tf.function(trainer.test_step, jit_compile=jit_compile)
  writer = (tf.summary.create_file_writer(os.path.join(model_dir, "logs")) if chief
            else tf.summary.create_noop_writer())
  with open(os.path.join(model_dir, "run.json"), "w") as f:
    json.dump({"config": dataclasses.asdict(cfg), "warnings": warnings,
               "vgg_source": dataclasses.asdict(vgg_source),
               "data": tfrecord_dir, "start_step": start}, f, indent=1)

  progbar = keras.utils.Progbar(cfg.iterations, stateful_metrics=list(trainer.trackers))
  progbar.update(start)
  iterator = iter(train_ds)
  metrics, t0 = {}, time.perf_counter()
  step = start
  for step in range(start + 1, cfg.iterations + 1):
    logs = {k: float(v) for k, v in train_fn(next(iterator)).items()}
    progbar.update(step, values=list(logs.items()))
    if step % 10 == 0 or step == cfg.iterations:
      with writer.as_default(step=step):
        for name, value in logs.items():
          tf.summary.scalar(f"train/{name}", value)
    if step % cfg.checkpoint_every == 0 or step == cfg.iterations:
      manager.save(checkpoint_number=step)
    if step % cfg.eval_every == 0 or step == cfg.iterations:
      metrics = evaluate(trainer, test_ds, test_fn, cfg.eval_batches)
      metrics["seconds_per_iteration"] = (time.perf_counter() - t0) / (step - start)
      for tracker in trainer.trackers.values():
        tracker.reset_state()
      if not chief:
        continue
      grid = before_after_grid(trainer.generator, fixed_phone, fixed_dslr)
      fileio.atomic_write_bytes(os.path.join(model_dir, "images", f"step_{step:06d}.png"),
                                   tf.io.encode_png(grid).numpy())
      with writer.as_default(step=step):
        for name, value in metrics.items():
          tf.summary.scalar(f"test/{name}", value)
        tf.summary.image("phone | enhanced | DSLR", grid[None], step=step)
        for w in warnings:
          tf.summary.text("warnings", w)
      writer.flush()
      fileio.save_keras_atomic(trainer.generator, os.path.join(model_dir, f"generator_{step:06d}.keras"))
      fileio.save_keras_atomic(trainer.generator, os.path.join(model_dir, "generator.keras"))
      with open(os.path.join(model_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, **metrics, "warnings": warnings}) + "\n")
      _write_summary(model_dir, cfg, warnings, step, metrics)
      print("\n" + " ".join(f"test_{k}={v:.4g}" for k, v in metrics.items()))
  print(f"Done at step {step}; generator weights {weights_fingerprint(trainer.generator)}")
  return metrics
