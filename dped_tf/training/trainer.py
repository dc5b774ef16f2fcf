"""The DPED training model: one generator step and one critic step per batch (docs/method.md §4)."""

import keras
import tensorflow as tf

from dped_tf import losses, metrics
from dped_tf.configs import LossConfig

_LOSS_NAMES = ("g_loss", "content", "color", "texture", "tv", "mse", "d_loss", "d_accuracy",
               "psnr")


def logged_names(loss_config):
  """The values a run logs (training and test lines, `metrics.jsonl`, TensorBoard): every
  loss term but those of weight 0, which are left out (the critic's `d_loss` and
  `d_accuracy` with the texture term: an untrained critic measures nothing)."""
  weights = {"content": loss_config.w_content, "color": loss_config.w_color,
             "texture": loss_config.w_texture, "tv": loss_config.w_tv,
             "mse": loss_config.w_mse}
  off = {name for name, w in weights.items() if not w}
  if "texture" in off:
    off |= {"d_loss", "d_accuracy"}
  return tuple(name for name in _LOSS_NAMES if name not in off)


def _is_loss_scaled(optimizer):
  return isinstance(optimizer, keras.optimizers.LossScaleOptimizer)


def _replicas():
  """Replicas in sync in the current replica context; 1 on one device or across replicas."""
  ctx = tf.distribute.get_replica_context()
  return ctx.num_replicas_in_sync if ctx else 1


def _across_workers():
  """True under a MultiWorkerMirroredStrategy of two or more workers (the chief counts as
  one): Keras' `fit` then reduces the step's logs across workers (see `train_step`)."""
  strategy = tf.distribute.get_strategy()
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return False
  jobs = strategy.cluster_resolver.cluster_spec().as_dict()
  return len(jobs.get("chief", [])) + len(jobs.get("worker", [])) > 1


def replica_share(terms, sums=()):
  """This replica's share of per-batch values over the global batch (docs/method.md §3 reductions).

  Under `tf.distribute` each replica sees `global_batch / replicas` samples and the
  optimizers SUM gradients over replicas. Sums over the batch (`sums`: texture, critic
  cross-entropy) are already shares; means (content, tv, mse, accuracy, PSNR) and the
  color loss (a sum over 2B) scale by local/global batch. The identity on one device.
  """
  replicas = _replicas()
  if replicas == 1:
    return terms
  return {k: v if k in sums else v / replicas for k, v in terms.items()}


class DPEDTrainer(keras.Model):
  """Holds the generator, the critic and the frozen VGG-19; `train_step` is one
  reference iteration (docs/method.md §4).

  A training batch holds 2B pairs: the first B feed the generator step, the other B
  the critic step, which shows it, per sample at random, the DSLR patch or the
  freshly enhanced phone patch. Evaluation batches (`test_step`) hold B pairs; the
  released code's test protocol scores batches of `test_batch_size` (`metrics.TestMetrics`).

  `train_step` returns the iteration's own losses (what `fit`'s callbacks see per batch);
  `trackers` hold their means over the epoch: `metrics` lists only them, so their names
  match the step's logs and `fit` reports their means as the epoch's logs.

  Under `strategy.run` each replica gets its own 2b pairs (b = B / replicas); losses
  are scaled by `replica_share` so the summed gradients are those of the global batch,
  and the logged values are summed over replicas.
  """

  def __init__(self, generator, discriminator, content_network, loss_config=LossConfig(),
               seed=0, test_batch_size=metrics.RELEASED_BATCH, **kwargs):
    super().__init__(**kwargs)
    self.generator = generator
    self.discriminator = discriminator
    self.content_network = content_network
    self.content_network.trainable = False
    self.loss_config = loss_config
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.seed_generator = keras.random.SeedGenerator(seed)
    self.trackers = {n: keras.metrics.Mean(name=n) for n in logged_names(loss_config)}
    # Losses as means over patches; image quality by both test protocols (docs/method.md §6),
    # the released one over full batches of `test_batch_size`.
    self.eval_trackers = {n: keras.metrics.Mean(name=n) for n in self.trackers if n != "psnr"}
    self.eval_trackers["quality"] = metrics.TestMetrics(test_batch_size, name="quality")

  def compile(self, g_optimizer, d_optimizer, **kwargs):
    super().compile(**kwargs)
    self.g_optimizer = g_optimizer
    self.d_optimizer = d_optimizer

  # The one override of a private Keras method (Keras 3.15 TensorFlowTrainer.fit calls
  # it before training; tests/trainer_test.py fails if it no longer does).
  # `training.loop.build_trainer` builds every network and optimizer. Under a strategy,
  # Keras' symbolic build would pull a batch only to find that, and under
  # MultiWorkerMirroredStrategy fails to reduce the (phone, dslr) pair of PerReplica
  # values it pulled.
  def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if not self.built:
      super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

  @property
  def metrics(self):
    """The training trackers: `fit` resets them at each epoch and reports their means."""
    return list(self.trackers.values())

  def reset_metrics(self):
    """Resets the training and the evaluation trackers (`fit`, `evaluate`)."""
    super().reset_metrics()
    for tracker in self.eval_trackers.values():
      tracker.reset_state()

  def call(self, phone, training=False):
    return self.generator(phone, training=training)

  def generator_losses(self, phone, dslr, training):
    """Enhances `phone` and returns (enhanced, dict of float32 losses incl. `g_loss`).

    The content and texture terms are not computed (0 here, left out of the logs:
    `logged_names`) where their weight is 0: no VGG-19 or critic pass (baselines, `demo`
    and `cpu_sample` presets)."""
    cfg = self.loss_config
    enhanced = self.generator(phone, training=training)
    dslr = tf.cast(dslr, tf.float32)
    skip_content = not cfg.w_content
    skip_texture = not cfg.w_texture
    probs = (None if skip_texture else
             self.discriminator(tf.image.rgb_to_grayscale(enhanced), training=training))
    # Two calls, not one on the concatenated batch: backprop then runs through the
    # enhanced half only.
    out = replica_share({
        "content": tf.constant(0.0) if skip_content else losses.content_loss(
            self.content_network(enhanced), tf.stop_gradient(self.content_network(dslr))),
        "color": losses.color_loss(dslr, enhanced),
        "texture": (tf.constant(0.0) if skip_texture
                    else losses.texture_loss(probs, cfg.texture_form)),
        "tv": losses.tv_loss(enhanced),
        "mse": losses.mse_loss(dslr, enhanced),
    }, sums=("texture",))
    w_texture = tf.where(self.step < cfg.texture_warmup, 0.0, cfg.w_texture)
    out["g_loss"] = (cfg.w_content * out["content"] + cfg.w_color * out["color"]
                     + w_texture * out["texture"] + cfg.w_tv * out["tv"]
                     + cfg.w_mse * out["mse"])
    return enhanced, out

  def critic_batch(self, enhanced, dslr):
    """Grayscale critic input, each sample DSLR or enhanced at random; and the labels.

    Every replica draws the choices of the whole global batch (the seed generator's state
    is mirrored) and keeps its own slice: with a fixed seed the choices do not depend on
    how many replicas share the batch.
    """
    local, replicas = tf.shape(dslr)[0], _replicas()
    is_dslr = keras.random.randint([local * replicas], 0, 2, seed=self.seed_generator)
    if replicas > 1:
      first = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group,
                      tf.int32) * local
      is_dslr = is_dslr[first:first + local]
    is_dslr = tf.cast(is_dslr, tf.float32)
    pick = tf.reshape(is_dslr, [-1, 1, 1, 1])
    gray = (pick * tf.image.rgb_to_grayscale(tf.cast(dslr, tf.float32))
            + (1.0 - pick) * tf.image.rgb_to_grayscale(tf.stop_gradient(enhanced)))
    return gray, is_dslr

  def critic_losses(self, enhanced, dslr, training):
    gray, is_dslr = self.critic_batch(enhanced, dslr)
    probs = self.discriminator(gray, training=training)
    hits = tf.equal(tf.argmax(probs, axis=1), tf.cast(1.0 - is_dslr, tf.int64))
    return replica_share({"d_loss": losses.discriminator_loss(probs, is_dslr),
                          "d_accuracy": tf.reduce_mean(tf.cast(hits, tf.float32))},
                         sums=("d_loss",))

  @staticmethod
  def _scaled(optimizer, loss):
    """Dynamic loss scaling under float16; call it inside the tape."""
    return optimizer.scale_loss(loss) if _is_loss_scaled(optimizer) else loss

  @staticmethod
  def _apply(optimizer, tape, scaled_loss, variables):
    optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))

  def train_step(self, data):
    phone, dslr = data
    phone_g, phone_d = tf.split(phone, 2)
    dslr_g, dslr_d = tf.split(dslr, 2)

    with tf.GradientTape() as tape:
      enhanced, g_out = self.generator_losses(phone_g, dslr_g, training=True)
      g_loss = self._scaled(self.g_optimizer, g_out["g_loss"])
    self._apply(self.g_optimizer, tape, g_loss, self.generator.trainable_variables)

    if self.loss_config.w_texture:
      enhanced_d = self.generator(phone_d, training=True)
      with tf.GradientTape() as tape:
        d_out = self.critic_losses(enhanced_d, dslr_d, training=True)
        d_loss = self._scaled(self.d_optimizer, d_out["d_loss"])
      self._apply(self.d_optimizer, tape, d_loss, self.discriminator.trainable_variables)
    else:  # no texture term: the critic step would be wasted work
      d_out = {"d_loss": tf.constant(0.0), "d_accuracy": tf.constant(0.0)}

    self.step.assign_add(1)
    results = {**g_out, **d_out,
               **replica_share({"psnr": tf.reduce_mean(metrics.psnr(enhanced, dslr_g))})}
    results = {name: results[name] for name in self.trackers}
    if _replicas() > 1:  # shares -> global-batch values, the same on every replica
      results = tf.distribute.get_replica_context().all_reduce("sum", results)
    for name, value in results.items():
      self.trackers[name].update_state(value)
    if _across_workers():
      # fit() averages a multi-worker run's logs with strategy.reduce(MEAN, axis=0),
      # which needs a batch axis: give it one (every replica holds the same values).
      results = {name: value[None] for name, value in results.items()}
    return results  # this iteration's values (fit's callbacks see each step's losses)

  def test_step(self, data):
    phone, dslr = data
    enhanced, out = self.generator_losses(phone, dslr, training=False)
    if "d_loss" in self.eval_trackers:
      out.update(self.critic_losses(enhanced, dslr, training=False))
    batch = tf.cast(tf.shape(phone)[0], tf.float32)  # a smaller last batch counts less
    for name, tracker in self.eval_trackers.items():
      if name != "quality":
        tracker.update_state(out[name], sample_weight=batch)
    self.eval_trackers["quality"].update_state(dslr, enhanced)
    logs = {}
    for name, tracker in self.eval_trackers.items():
      result = tracker.result()
      logs.update(result if isinstance(result, dict) else {name: result})
    return logs
