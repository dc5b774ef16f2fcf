"""The training loop: `DPEDTrainer` built from a `TrainConfig`, driven by `fit()` in
epochs of `eval_every` iterations with the callbacks of `training.callbacks`
(docs/method.md §4)."""

import dataclasses
import sys
from typing import NamedTuple

from absl import logging
import keras

from dped_tf import metrics
from dped_tf import precision
from dped_tf.configs import TrainConfig
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError
from dped_tf.modeling import warm_start
from dped_tf.modeling.factory import make_generator
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling.vgg import ContentNetwork, VGGSource, load_content_network
from dped_tf.training import callbacks as run_callbacks
from dped_tf.training import run as run_lib
from dped_tf.training.trainer import DPEDTrainer

NUM_FIXED_CROPS = 5


def build_trainer(cfg: TrainConfig, vgg=None, warm_start_from_file=True):
  """A compiled `DPEDTrainer` with built networks and optimizers, under `cfg.precision`.

  The generator starts as `cfg.init` says, then from `cfg.init_from` when given (and
  `warm_start_from_file`: a resumed run restores its checkpoint instead; a file of
  another architecture or norm is refused here, in one line); the critic and the
  optimizers always start fresh. Adam's epsilon is `cfg.adam_epsilon` (1e-8, the
  released code's TF1 AdamOptimizer; Keras' default is 1e-7).
  `vgg`: (content network, VGGSource) already loaded, else loaded from `cfg.vgg_weights`;
  without a content term (`w_content` 0) no weights are read: the network is never run
  (VGGSource "unused").
  Under a strategy, call it in `strategy.scope()`. Returns (trainer, vgg_source).
  """
  compute_dtype = precision.resolve(cfg.precision)
  precision.set_policy(compute_dtype)
  keras.utils.set_random_seed(cfg.seed)
  generator, discriminator = make_generator(cfg.architecture, cfg.norm), Discriminator()
  generator.build((None, None, None, 3))
  if cfg.init == "identity":
    warm_start.identity_init(generator)
  if cfg.init_from and warm_start_from_file:
    warm_start.init_from_file(generator, cfg.init_from)
  discriminator.build((None, cfg.patch_size, cfg.patch_size, 1))
  # Last, so that an `init_from` file of another architecture is refused before VGG-19
  # weights are read (or downloaded); its own random draws come after the seeded ones.
  if vgg is None and not cfg.loss.w_content:
    vgg = ContentNetwork(seed=cfg.seed), VGGSource("unused", "bgr", fallback=False)
  content_network, vgg_source = vgg or load_content_network(
      cfg.vgg_weights, seed=cfg.seed, compute_dtype=cfg.vgg_precision)
  content_network.build((None, None, None, 3))
  trainer = DPEDTrainer(generator, discriminator, content_network, cfg.loss, seed=cfg.seed,
                        test_batch_size=cfg.batch_size)
  g_opt, d_opt = (precision.wrap_optimizer(
      keras.optimizers.Adam(cfg.learning_rate, epsilon=cfg.adam_epsilon), compute_dtype)
                  for _ in range(2))
  g_opt.build(generator.trainable_variables)
  d_opt.build(discriminator.trainable_variables)
  trainer.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=False)
  trainer.built = True  # its networks are; nothing for fit() to build symbolically
  return trainer, vgg_source


class Segment(NamedTuple):
  """One `fit()` call: epochs `initial_epoch` to `epochs - 1` of `steps_per_epoch`."""
  initial_epoch: int
  epochs: int
  steps_per_epoch: int


def segments(start, iterations, every):
  """The `fit()` calls that take a run from step `start` to `iterations` in epochs that
  end at the multiples of `every` and at `iterations`: epoch k ends at step
  min((k + 1) * every, iterations). A run resumed inside an epoch first finishes it
  (a shorter epoch), and a last epoch shorter than `every` is a call of its own."""
  plan, step = [], start
  if step % every and step < iterations:
    end = min((step // every + 1) * every, iterations)
    plan.append(Segment(step // every, step // every + 1, end - step))
    step = end
  full = (iterations - step) // every
  if full:
    plan.append(Segment(step // every, step // every + full, every))
    step += full * every
  if step < iterations:
    plan.append(Segment(step // every, step // every + 1, iterations - step))
  return plan


def train(cfg: TrainConfig, tfrecord_dir, model_dir, jit_compile=False, vgg=None,
          strategy=None, callbacks=(), progress=None, new_segment=False):
  """Runs (or resumes) training in `model_dir` (`run.open_run`: one run at a time);
  returns the last evaluation metrics. See `run_training`; `vgg` as in `build_trainer`
  (under a strategy, loaded in `strategy.scope()`)."""
  with run_lib.open_run(model_dir, strategy) as run:
    run_lib.check_settings(run, cfg, new_segment)
    with run.strategy.scope():
      trainer, vgg_source = build_trainer(cfg, vgg, warm_start_from_file=not run.resuming)
    return run_training(run, trainer, vgg_source, cfg, tfrecord_dir, jit_compile,
                        callbacks, progress, new_segment)


def unprocessed_metrics(dataset, batch_size, max_batches=0):
  """Both test protocols (`metrics.TestMetrics`) of the phone patches as they are, over
  the batches a run's evaluation sees: the baseline its test metrics are read against."""
  scores = metrics.TestMetrics(batch_size)
  for phone, dslr in dataset.take(max_batches or -1):
    scores.update_state(dslr, phone)
  return {k: float(v) for k, v in scores.result().items()}


def patch_size_error(tfrecord_dir, meta, patch_size):
  """The DpedError of a `--patch_size` other than the prepared patches'."""
  remake = (f"dped-tf sample --phone {meta.get('phone', 'P')} --patch_size {patch_size} "
            "--overwrite" if meta.get("sample") else
            f"dped-tf prepare --patch_size {patch_size} --overwrite")
  return DpedError(f"{tfrecord_dir}: patches are {meta['patch_size']} px, --patch_size is "
                   f"{patch_size}; train with --patch_size {meta['patch_size']} (or leave "
                   f"it out), or make {patch_size} px patches again ({remake})")


def final_report(run, last, baseline):
  """Where the run's outputs are, and its last test metrics beside the unprocessed phone
  patches'."""
  lines = [f"Generator: {run.path('generator.keras')}", f"Summary: {run.path('summary.md')}"]
  if last:
    lines.append(f"Test patches ({int(last['patches'])}, per patch): PSNR {last['psnr']:.2f} "
                 f"dB, SSIM {last['ssim']:.4f}; phone unprocessed: PSNR "
                 f"{baseline['psnr']:.2f} dB, SSIM {baseline['ssim']:.4f} "
                 f"({last['psnr'] - baseline['psnr']:+.2f} dB)")
  return "\n".join(lines)


def run_training(run, trainer, vgg_source, cfg: TrainConfig, tfrecord_dir, jit_compile=False,
                 callbacks=(), progress=None, new_segment=False):
  """Trains `trainer` (from `build_trainer` for this `run`) through `fit()`; returns the
  last evaluation metrics.

  `run.model_dir` receives `checkpoints/` (generator, critic, both optimizers, step,
  critic seed), `logs/` (TensorBoard), `images/step_NNNNNN.png` before/after crops,
  `generator.keras` (latest) plus one per evaluation, `metrics.jsonl`, `summary.md` and
  `run.json` (the resolved configuration, the generator's source, the step it started
  at, for each segment of the run: `run.check_settings` refuses other settings on resume
  unless `new_segment`). Epochs end at the multiples of `cfg.eval_every` and at `cfg.iterations`
  (`segments`); each ends with an evaluation (`test_*` in the epoch's logs, beside the
  epoch's mean losses) and the outputs made from it. `callbacks` are the caller's own,
  run after those of `training.callbacks`: their batch logs hold each iteration's losses.

  `progress`: Keras' progress bar (True) or plain lines (False: one every
  `cfg.log_every` iterations and Keras' line per epoch); default: the bar on a terminal. SIGTERM or SIGINT: a checkpoint at the step reached, then
  `callbacks.Preempted`.

  Under `run.strategy`, `cfg.batch_size` is the global batch, split evenly over the
  replicas; each worker reads its own shard of the records. Every worker evaluates
  (cheap next to training, and it keeps them in step).
  """
  strategy = run.strategy
  replicas = strategy.num_replicas_in_sync
  if cfg.batch_size % replicas:
    raise DpedError(f"batch size {cfg.batch_size} does not split evenly over "
                    f"{replicas} replicas")
  meta = tfrecords.read_meta(tfrecord_dir)
  if meta.get("patch_size", cfg.patch_size) != cfg.patch_size:
    raise patch_size_error(tfrecord_dir, meta, cfg.patch_size)
  cfg = dataclasses.replace(cfg, precision=precision.resolve(cfg.precision))
  resumed = run.resuming
  changes = run_lib.check_settings(run, cfg, new_segment)
  run.make_folders()
  trainer.jit_compile = jit_compile
  warnings = [vgg_source.warning] if vgg_source.warning else []  # said when VGG loaded
  if meta.get("sample"):
    warnings.append(f"training data is the embedded sample ({meta['sample']}), not DPED")
    logging.warning(warnings[-1])

  manager = run_lib.restore(run, trainer)
  start = int(trainer.step.numpy())
  if start >= cfg.iterations:
    print(f"Nothing to do: step {start} >= --iterations {cfg.iterations}")
    print(final_report(run, {}, {}))
    return {}

  def train_dataset(step):
    """The records an uninterrupted run reads after `step`."""
    def train_input(ctx):
      per_replica = ctx.get_per_replica_batch_size(cfg.batch_size)
      local_replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
      return tfrecords.make_dataset(
          tfrecord_dir, "train", per_replica, cfg.patch_size, training=True,
          shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed, num_shards=ctx.num_input_pipelines,
          shard_index=ctx.input_pipeline_id,
          start_record=step * 2 * per_replica * local_replicas)
    return strategy.distribute_datasets_from_function(train_input)

  test_ds = tfrecords.make_dataset(tfrecord_dir, "test", cfg.batch_size, cfg.patch_size,
                                   training=False)
  source = run_lib.generator_source(cfg, resumed)
  notes = [f"Generator started from {source['init_from']['path']}"
           + (" (this run resumed from its checkpoints)" if resumed else "")
           ] if cfg.init_from else []
  run_lib.write_run_json(run, cfg, source, warnings, vgg_source, tfrecord_dir, start,
                         changes, resumed)
  baseline = unprocessed_metrics(test_ds, cfg.batch_size, cfg.eval_batches)

  preemption = run_callbacks.PreemptionCheckpoint(manager, strategy)
  steps = [preemption,
           run_callbacks.Checkpoint(manager, cfg.checkpoint_every, cfg.iterations),
           run_callbacks.Evaluation(test_ds, cfg.eval_batches, jit_compile)]
  notes += [f"Settings changed at step {start} (--new_segment): {'; '.join(changes)}"
            ] if changes else []
  metrics_log = run_callbacks.MetricsLog(run.model_dir, cfg, warnings, notes, baseline)
  if run.chief:  # the other workers keep in step (checkpoints, evaluation), write nothing
    fixed_phone, fixed_dslr = next(iter(test_ds.unbatch().batch(NUM_FIXED_CROPS)))
    board = run_callbacks.TensorBoard(run.path("logs"), cfg.log_every, cfg.iterations,
                                      warnings)
    steps += [board,
              run_callbacks.BeforeAfterGrid(fixed_phone, fixed_dslr, run.path("images"),
                                            board.writer),
              run_callbacks.GeneratorExport(run.model_dir),
              metrics_log]
  progress = sys.stdout.isatty() if progress is None else progress
  if not progress:
    steps.append(run_callbacks.ProgressLines(cfg.log_every, cfg.iterations))
  step = start
  for segment in segments(start, cfg.iterations, cfg.eval_every):
    trainer.fit(train_dataset(step), shuffle=False, callbacks=steps + list(callbacks),
                verbose=1 if progress else 2, **segment._asdict())
    step = int(trainer.step.numpy())
    if trainer.stop_training:  # preempted, or stopped by a callback
      break
  if preemption.stopped:
    raise run_callbacks.Preempted(*preemption.stopped)
  print(f"Done at step {step}; generator weights "
        f"{run_lib.weights_fingerprint(trainer.generator)}")
  if run.chief:
    print(final_report(run, metrics_log.last, baseline))
  return metrics_log.last
