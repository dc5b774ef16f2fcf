"""The training loop around `DPEDTrainer`: checkpoints, evaluation, logs (SPEC 4)."""

import dataclasses
import json
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from dped_tf import precision
from dped_tf.configs import TrainConfig
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling.generator import Generator
from dped_tf.modeling.trainer import DPEDTrainer
from dped_tf.modeling.vgg import load_content_network

NUM_FIXED_CROPS = 5


def build_trainer(cfg: TrainConfig, vgg=None):
  """A compiled `DPEDTrainer` with built networks and optimizers, under `cfg.precision`.

  `vgg`: (content network, VGGSource) already loaded, else loaded from `cfg.vgg_weights`.
  Returns (trainer, vgg_source).
  """
  precision.set_policy(cfg.precision)
  content_network, vgg_source = vgg or load_content_network(cfg.vgg_weights, seed=cfg.seed)
  keras.utils.set_random_seed(cfg.seed)
  generator, discriminator = Generator(norm=cfg.norm), Discriminator()
  generator.build((None, None, None, 3))
  discriminator.build((None, cfg.patch_size, cfg.patch_size, 1))
  content_network.build((None, None, None, 3))
  trainer = DPEDTrainer(generator, discriminator, content_network, cfg.loss, seed=cfg.seed)
  g_opt, d_opt = (precision.wrap_optimizer(keras.optimizers.Adam(cfg.learning_rate),
                                           cfg.precision) for _ in range(2))
  g_opt.build(generator.trainable_variables)
  d_opt.build(discriminator.trainable_variables)
  trainer.compile(g_optimizer=g_opt, d_optimizer=d_opt)
  return trainer, vgg_source


def make_checkpoint(trainer):
  return tf.train.Checkpoint(generator=trainer.generator, discriminator=trainer.discriminator,
                             g_optimizer=trainer.g_optimizer, d_optimizer=trainer.d_optimizer,
                             step=trainer.step)


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


def save_keras_atomic(model, path):
  tmp = os.path.join(os.path.dirname(path), f".tmp-{os.getpid()}-{os.path.basename(path)}")
  model.save(tmp)
  os.replace(tmp, path)


def _write_summary(model_dir, cfg, warnings, step, metrics):
  lines = [f"**WARNING: {w}**\n" for w in warnings]
  lines += [f"# dped_tf training run, step {step} of {cfg.iterations}\n",
            "| metric | value |", "|---|---|"]
  lines += [f"| {k} | {v:.5g} |" for k, v in metrics.items()]
  lines += ["", "```json", json.dumps(dataclasses.asdict(cfg), indent=1), "```", ""]
  tfrecords.atomic_write_bytes(os.path.join(model_dir, "summary.md"), "\n".join(lines).encode())


def train(cfg: TrainConfig, tfrecord_dir, model_dir, jit_compile=False, vgg=None):
  """Runs (or resumes) training; returns the last evaluation metrics.

  `model_dir` receives `checkpoints/` (generator, critic, both optimizers, step),
  `logs/` (TensorBoard), `images/step_NNNNNN.png` before/after crops,
  `generator.keras` (latest) plus one per evaluation, `metrics.jsonl`, `summary.md`.
  """
  meta = tfrecords.read_meta(tfrecord_dir)
  if meta.get("patch_size", cfg.patch_size) != cfg.patch_size:
    raise DpedError(f"{tfrecord_dir}: patches are {meta['patch_size']} px, "
                    f"--patch_size is {cfg.patch_size}")
  if os.path.exists(model_dir) and not os.path.isdir(model_dir):
    raise DpedError(f"{model_dir}: output path exists and is not a folder")
  for sub in ("checkpoints", "images", "logs"):
    os.makedirs(os.path.join(model_dir, sub), exist_ok=True)

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
    logging.info("Resuming from %s at step %d", manager.latest_checkpoint, int(trainer.step))
    print(f"Resuming from step {int(trainer.step)} ({manager.latest_checkpoint})")
  start = int(trainer.step)
  if start >= cfg.iterations:
    print(f"Nothing to do: step {start} >= --iterations {cfg.iterations}")
    return {}

  # A resumed run reshuffles with another seed rather than replaying the first batches.
  train_ds = tfrecords.make_dataset(tfrecord_dir, "train", cfg.batch_size, cfg.patch_size,
                                    training=True, shuffle_buffer=cfg.shuffle_buffer,
                                    seed=cfg.seed + start)
  test_ds = tfrecords.make_dataset(tfrecord_dir, "test", cfg.batch_size, cfg.patch_size,
                                   training=False)
  fixed_phone, fixed_dslr = next(iter(test_ds.unbatch().batch(NUM_FIXED_CROPS)))
  train_fn = tf.function(trainer.train_step, jit_compile=jit_compile)
  test_fn = tf.function(trainer.test_step, jit_compile=jit_compile)
  writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs"))
  with open(os.path.join(model_dir, "run.json"), "w") as f:
    json.dump({"config": dataclasses.asdict(cfg), "warnings": warnings,
               "vgg_source": dataclasses.asdict(vgg_source),
               "data": tfrecord_dir, "start_step": start}, f, indent=1)

  progbar = keras.utils.Progbar(cfg.iterations, stateful_metrics=list(trainer.trackers))
  progbar.update(start)
  iterator = iter(train_ds)
  metrics, t0 = {}, time.perf_counter()
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
      grid = before_after_grid(trainer.generator, fixed_phone, fixed_dslr)
      tfrecords.atomic_write_bytes(os.path.join(model_dir, "images", f"step_{step:06d}.png"),
                                   tf.io.encode_png(grid).numpy())
      with writer.as_default(step=step):
        for name, value in metrics.items():
          tf.summary.scalar(f"test/{name}", value)
        tf.summary.image("phone | enhanced | DSLR", grid[None], step=step)
        for w in warnings:
          tf.summary.text("warnings", w)
      writer.flush()
      save_keras_atomic(trainer.generator, os.path.join(model_dir, f"generator_{step:06d}.keras"))
      save_keras_atomic(trainer.generator, os.path.join(model_dir, "generator.keras"))
      with open(os.path.join(model_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"step": step, **metrics, "warnings": warnings}) + "\n")
      _write_summary(model_dir, cfg, warnings, step, metrics)
      print("\n" + " ".join(f"test_{k}={v:.4g}" for k, v in metrics.items()))
      for tracker in trainer.trackers.values():
        tracker.reset_state()
  return metrics
