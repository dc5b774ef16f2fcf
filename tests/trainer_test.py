"""One-step training on tiny TFRecords made by the test (docs/method.md §4)."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from dped_tf.testing.data import write_tiny_records
from dped_tf.testing.numpy_metrics import np_psnr, np_released_ms_ssim, np_ssim
from dped_tf import configs, losses
from dped_tf.training import loop
from dped_tf.dataloaders import tfrecords

PATCH, BATCH = 32, 2


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return write_tiny_records(str(tmp_path_factory.mktemp("dped")), train=8, test=4, patch=PATCH)


def make_trainer(**overrides):
  cfg = configs.TrainConfig(**{"batch_size": BATCH, "patch_size": PATCH,
                               "vgg_weights": "none", **overrides})
  trainer, _ = loop.build_trainer(cfg)
  return trainer


def one_batch(records, seed=0):
  ds = tfrecords.make_dataset(records, "train", BATCH, PATCH, training=True, seed=seed)
  return next(iter(ds))


def snapshot(variables):
  return [v.numpy().copy() for v in variables]


def changed(before, variables):
  return [not np.array_equal(b, v.numpy()) for b, v in zip(before, variables)]


def test_one_step_updates_both_networks_not_vgg(records):
  trainer = make_trainer()
  g0, d0 = snapshot(trainer.generator.weights), snapshot(trainer.discriminator.weights)
  v0 = snapshot(trainer.content_network.weights)
  logs = tf.function(trainer.train_step)(one_batch(records))
  assert int(trainer.step) == 1
  assert all(changed(g0, trainer.generator.weights))
  assert all(changed(d0, trainer.discriminator.weights))
  assert not any(changed(v0, trainer.content_network.weights))
  assert int(trainer.g_optimizer.iterations) == 1 and int(trainer.d_optimizer.iterations) == 1
  for name in ("g_loss", "d_loss", "content", "color", "texture", "tv", "psnr", "d_accuracy"):
    assert np.isfinite(float(logs[name])), name


def test_sub_steps_see_different_batches(records):
  trainer = make_trainer()
  seen = {}
  g_losses, c_losses = trainer.generator_losses, trainer.critic_losses

  def spy_g(phone, dslr, training):
    seen["g_dslr"] = dslr.numpy()
    return g_losses(phone, dslr, training)

  def spy_c(enhanced, dslr, training):
    seen["c_dslr"] = dslr.numpy()
    return c_losses(enhanced, dslr, training)

  trainer.generator_losses, trainer.critic_losses = spy_g, spy_c
  phone, dslr = one_batch(records)
  trainer.train_step((phone, dslr))  # eagerly, so the spies see values
  assert phone.shape[0] == 2 * BATCH
  np.testing.assert_array_equal(seen["g_dslr"], dslr[:BATCH])
  np.testing.assert_array_equal(seen["c_dslr"], dslr[BATCH:])
  assert not np.array_equal(seen["g_dslr"], seen["c_dslr"])


def test_generator_loss_is_the_weighted_sum(records):
  phone, dslr = one_batch(records)
  for preset in ("reference", "paper"):
    cfg = configs.LOSS_PRESETS[preset]
    trainer = make_trainer(loss=cfg)
    enhanced, out = trainer.generator_losses(phone[:BATCH], dslr[:BATCH], training=False)
    expected = (cfg.w_content * out["content"] + cfg.w_color * out["color"]
                + cfg.w_texture * out["texture"] + cfg.w_tv * out["tv"])
    np.testing.assert_allclose(float(out["g_loss"]), float(expected), rtol=1e-6)
    np.testing.assert_allclose(float(out["color"]),
                               float(losses.color_loss(dslr[:BATCH], enhanced)), rtol=1e-6)
  assert configs.LOSS_PRESETS["paper"] == configs.LossConfig(1.0, 0.1, 0.4, 400.0)
  assert configs.LOSS_PRESETS["reference"] == configs.LossConfig(10.0, 0.5, 1.0, 2000.0)


def test_texture_warmup_turns_the_texture_term_off(records):
  phone, dslr = one_batch(records)
  cfg = dataclasses.replace(configs.LossConfig(), texture_warmup=2)
  trainer = make_trainer(loss=cfg)
  _, out = trainer.generator_losses(phone[:BATCH], dslr[:BATCH], training=False)
  without = (cfg.w_content * out["content"] + cfg.w_color * out["color"]
             + cfg.w_tv * out["tv"])
  assert abs(float(out["texture"])) > 0
  np.testing.assert_allclose(float(out["g_loss"]), float(without), rtol=1e-6)
  trainer.step.assign(2)
  _, out = trainer.generator_losses(phone[:BATCH], dslr[:BATCH], training=False)
  np.testing.assert_allclose(float(out["g_loss"]),
                             float(without + cfg.w_texture * out["texture"]), rtol=1e-5)


def test_critic_batch_mixes_dslr_and_enhanced(records):
  trainer = make_trainer()
  _, dslr = one_batch(records)
  enhanced = tf.zeros_like(dslr)
  gray, is_dslr = trainer.critic_batch(enhanced, dslr)
  expected = np.where(is_dslr.numpy()[:, None, None, None] > 0,
                      tf.image.rgb_to_grayscale(dslr).numpy(), 0.0)
  np.testing.assert_allclose(gray.numpy(), expected, atol=1e-6)
  draws = np.concatenate([trainer.critic_batch(enhanced, dslr)[1].numpy() for _ in range(20)])
  assert 0.25 < draws.mean() < 0.75


def test_test_step_scores_both_protocols(records):
  trainer = make_trainer(batch_size=3)  # the released protocol's full batch: 3
  ds = list(tfrecords.make_dataset(records, "test", 3, PATCH, training=False))
  assert [int(b[0].shape[0]) for b in ds] == [3, 1]
  raw, dslr = [], []
  for phone, target in ds:
    raw.append(trainer.generator(phone).numpy())
    dslr.append(target.numpy())
    logs = trainer.test_step((phone, target))
  raw, dslr = np.concatenate(raw), np.concatenate(dslr)
  clipped = np.clip(raw, 0, 1)  # the generator's range slightly exceeds [0, 1]
  np.testing.assert_allclose(float(logs["psnr"]),
                             np.mean([np_psnr(x, y) for x, y in zip(clipped, dslr)]), rtol=1e-4)
  np.testing.assert_allclose(float(logs["ssim"]),
                             np.mean([np_ssim(x, y) for x, y in zip(clipped, dslr)]), atol=1e-4)
  # Released protocol: the one full batch, raw outputs; the last patch is dropped.
  np.testing.assert_allclose(float(logs["released_psnr"]), np_psnr(raw[:3], dslr[:3]),
                             rtol=1e-4)
  np.testing.assert_allclose(float(logs["released_ms_ssim"]),
                             np_released_ms_ssim(raw[:3], dslr[:3]), atol=1e-6)
  assert (float(logs["patches"]), float(logs["full_batches"])) == (4.0, 1.0)
  assert 0.0 <= float(logs["d_accuracy"]) <= 1.0


@pytest.mark.parametrize("policy", ["bfloat16", "float16"])
def test_mixed_precision_step(records, policy):
  trainer = make_trainer(precision=policy)
  if policy == "float16":
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
  g0 = snapshot(trainer.generator.trainable_weights)
  step = tf.function(trainer.train_step)
  logs = step(one_batch(records))
  if policy == "float16":
    # The summed reference losses overflow float16 gradients at Keras' initial scale
    # 2^15: such steps are skipped and the scale halves until a step goes through.
    inner = trainer.g_optimizer.inner_optimizer
    for _ in range(30):
      if int(inner.iterations):
        break
      logs = step(one_batch(records))
    assert int(inner.iterations) >= 1
    assert float(trainer.g_optimizer.dynamic_scale) < 2.0**15
  assert logs["g_loss"].dtype == tf.float32
  assert all(np.isfinite(float(v)) for v in logs.values())
  assert all(changed(g0, trainer.generator.trainable_weights))
  assert trainer.generator.conv1.kernel.dtype == "float32"


def test_keras_fit_runs_the_custom_train_step(records):
  trainer = make_trainer()
  ds = tfrecords.make_dataset(records, "train", BATCH, PATCH, training=True)
  history = trainer.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)
  assert int(trainer.step) == 2
  assert np.isfinite(history.history["g_loss"][-1])


def test_fit_reports_the_epochs_mean_losses(records):
  trainer = make_trainer()
  steps = []

  class Steps(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      steps.append(float(logs["g_loss"]))

  ds = tfrecords.make_dataset(records, "train", BATCH, PATCH, training=True)
  history = trainer.fit(ds, steps_per_epoch=3, epochs=2, verbose=0, callbacks=[Steps()])
  np.testing.assert_allclose(history.history["g_loss"],
                             [np.mean(steps[:3]), np.mean(steps[3:])], rtol=1e-5)


def test_fit_under_a_strategy_skips_keras_symbolic_build(records):
  """`DPEDTrainer._maybe_symbolic_build` overrides a private Keras method: fit() must
  still call it (else the override is dead and, under a strategy, Keras pulls a batch
  to build a model that `build_trainer` has built)."""
  strategy = tf.distribute.MirroredStrategy(["CPU:0"])
  with strategy.scope():
    trainer = make_trainer()
  calls = []
  keras_build = trainer._symbolic_build  # pylint: disable=protected-access

  def spy_build(*args, **kwargs):
    calls.append("symbolic_build")
    return keras_build(*args, **kwargs)

  def spy_maybe(*args, **kwargs):
    calls.append("maybe_symbolic_build")
    return type(trainer)._maybe_symbolic_build(trainer, *args, **kwargs)

  trainer._symbolic_build, trainer._maybe_symbolic_build = spy_build, spy_maybe
  ds = tfrecords.make_dataset(records, "train", BATCH, PATCH, training=True)
  trainer.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
  assert calls == ["maybe_symbolic_build"] and int(trainer.step.numpy()) == 1
