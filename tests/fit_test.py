"""`dped-tf train` through `fit()` (docs/method.md §4): generated flags, `--init_from`, every
model x norm x init combination, user callbacks, one run per folder."""

import json
import os
import subprocess
import sys

from absl import flags
import keras
import numpy as np
import pytest
import tensorflow as tf

from dped_tf.testing.data import write_tiny_records
from dped_tf import config_flags, configs
from dped_tf.training import loop, run as run_lib
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError
from dped_tf.modeling.factory import make_generator

PATCH, BATCH = 32, 2


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return write_tiny_records(str(tmp_path_factory.mktemp("dped")), train=6, test=2, patch=PATCH)


def tiny(**overrides):
  kw = dict(batch_size=BATCH, patch_size=PATCH, vgg_weights="none", eval_batches=1,
            shuffle_buffer=4)
  return configs.TrainConfig(**{**kw, **overrides})


def saved_generator(path, model="dped", norm="instance", seed=11):
  keras.utils.set_random_seed(seed)
  g = make_generator(model, norm)
  g.build((None, None, None, 3))
  g.save(path)
  return [w.numpy() for w in g.weights]


def parse(*args):
  fv = flags.FlagValues()
  configs.define_phone_flag(fv, "phone")
  config_flags.define_train_flags(fv)
  fv(["train", *args])
  return config_flags.train_config_from_flags(fv, phone=fv.phone)


def test_flags_come_from_the_config_fields():
  cfg = parse("--phone", "pixel-8", "--preset", "paper", "--w_color", "0.25",
              "--texture_form", "paper", "--iterations", "7", "--norm", "batch")
  paper = configs.LOSS_PRESETS["paper"]
  assert cfg.loss == configs.LossConfig(w_content=paper.w_content, w_color=0.25,
                                        w_texture=paper.w_texture, w_tv=paper.w_tv,
                                        texture_form="paper")
  assert (cfg.phone, cfg.iterations, cfg.norm) == ("pixel-8", 7, "batch")
  assert parse("--phone", "sony", "--architecture", "srcnn").loss == configs.LOSS_PRESETS["srcnn"]
  assert parse("--phone", "sony") == configs.TrainConfig(phone="sony")
  with pytest.raises(flags.IllegalFlagValueError):
    parse("--phone", "sony", "--norm", "group")
  with pytest.raises(flags.IllegalFlagValueError):
    parse("--phone", "sony", "--w_tv", "-1")
  assert configs.TrainConfig().adam_epsilon == 1e-8
  trainer, _ = loop.build_trainer(tiny())
  assert trainer.g_optimizer.epsilon == 1e-8 and trainer.d_optimizer.epsilon == 1e-8


ACCEPTED = [(m, n, i) for m in configs.ARCHITECTURES for n in configs.NORMS for i in configs.INITS
            if m != "srcnn" or (n, i) == ("instance", "reference")]


def test_refused_combinations_are_named():
  refused = [(m, n, i) for m in configs.ARCHITECTURES for n in configs.NORMS for i in configs.INITS
             if (m, n, i) not in ACCEPTED]
  assert len(refused) == 3
  for model, norm, init in refused:
    with pytest.raises(ValueError, match="srcnn"):
      tiny(architecture=model, norm=norm, init=init)


@pytest.mark.parametrize("model,norm,init", ACCEPTED)
def test_every_accepted_combination_trains_one_step(records, model, norm, init):
  trainer, _ = loop.build_trainer(tiny(architecture=model, norm=norm, init=init))
  before = [w.numpy() for w in trainer.generator.trainable_weights]
  batch = next(iter(tfrecords.make_dataset(records, "train", BATCH, PATCH, seed=0)))
  if init == "identity":  # starts near the identity map, batch norm included
    phone = batch[0][:BATCH]
    mse = np.mean((trainer.generator(phone, training=False).numpy() - phone.numpy()) ** 2)
    assert 10 * np.log10(1 / mse) > 20.0, mse
  logs = trainer.train_step(batch)  # eagerly: no tracing, the same step
  assert int(trainer.step) == 1 and all(np.isfinite(float(v)) for v in logs.values())
  after = [w.numpy() for w in trainer.generator.trainable_weights]
  assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_init_from_copies_the_generator_only(tmp_path):
  path = str(tmp_path / "g.keras")
  weights = saved_generator(path)
  fresh, _ = loop.build_trainer(tiny())
  warm, _ = loop.build_trainer(tiny(init_from=path))
  for w, expected in zip(warm.generator.weights, weights):
    np.testing.assert_array_equal(w.numpy(), expected)
  assert not np.array_equal(fresh.generator.weights[0].numpy(), weights[0])
  for a, b in zip(warm.discriminator.weights, fresh.discriminator.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())   # the critic starts fresh
  assert int(warm.g_optimizer.iterations) == 0 and int(warm.step) == 0


@pytest.mark.parametrize("saved,run,needle", [
    (("dped", "batch"), dict(), "batch norm"),
    (("srcnn", "instance"), dict(), "SRCNN"),
    (("dped", "instance"), dict(architecture="srcnn"), "instance norm"),
])
def test_init_from_another_architecture_is_refused(tmp_path, saved, run, needle):
  path = str(tmp_path / "other.keras")
  saved_generator(path, *saved)
  with pytest.raises(DpedError, match=needle) as e:
    loop.build_trainer(tiny(init_from=path, **run))
  assert str(e.value).startswith(path) and "\n" not in str(e.value)


def test_resumed_run_ignores_init_from_and_records_it(records, tmp_path):
  first, wrong = str(tmp_path / "a.keras"), str(tmp_path / "batch.keras")
  weights = saved_generator(first)
  saved_generator(wrong, norm="batch")
  run = str(tmp_path / "run")
  seen = []

  class FirstWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
      seen.append([w.numpy() for w in self.model.generator.weights])

    def on_train_end(self, logs=None):
      seen.append([w.numpy() for w in self.model.generator.weights])

  loop.train(tiny(init_from=first, iterations=1, eval_every=1), records, run,
                  callbacks=[FirstWeights()], progress=False)
  for w, expected in zip(seen[0], weights):
    np.testing.assert_array_equal(w, expected)
  with open(os.path.join(run, "run.json")) as f:
    source = json.load(f)["generator_source"]["init_from"]
  assert source["path"] == os.path.abspath(first) and source["used"]
  with open(os.path.join(run, "summary.md")) as f:
    assert os.path.abspath(first) in f.read()
  # Another start file is another setting: refused, unless as a new segment; then a
  # file that would be refused is not even read: the run resumes from step 1.
  with pytest.raises(DpedError, match="init_from"):
    loop.train(tiny(init_from=wrong, iterations=2, eval_every=1), records, run,
               progress=False)
  loop.train(tiny(init_from=wrong, iterations=2, eval_every=1), records, run,
             callbacks=[FirstWeights()], progress=False, new_segment=True)
  for w, saved in zip(seen[2], seen[1]):  # starts where the first run ended
    np.testing.assert_array_equal(w, saved)
  with open(os.path.join(run, "run.json")) as f:
    record = json.load(f)
  assert record["start_step"] == 1 and not record["generator_source"]["init_from"]["used"]
  assert [seg["config"]["init_from"] for seg in record["segments"]] == [first, wrong]


def test_user_callback_receives_each_steps_losses(records, tmp_path):
  cfg = tiny(iterations=2, eval_every=2, seed=4)
  got, epochs = {}, {}

  class Recorder(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
      got[int(self.model.step)] = {k: float(v) for k, v in logs.items()}

    def on_epoch_end(self, epoch, logs=None):
      epochs[int(self.model.step)] = dict(logs)

  metrics = loop.train(cfg, records, str(tmp_path / "run"), callbacks=[Recorder()],
                       progress=False)
  assert sorted(got) == [1, 2] and not any(k.startswith("test_") for k in got[2])
  # One epoch of eval_every iterations: its logs hold the evaluation and the means of
  # the iterations' losses (the trainer's trackers).
  assert list(epochs) == [2] and {f"test_{k}" for k in metrics} <= set(epochs[2])
  for name in ("g_loss", "color", "d_loss", "psnr"):
    np.testing.assert_allclose(epochs[2][name], (got[1][name] + got[2][name]) / 2, rtol=1e-5)
  # The same two iterations by hand: same seed, same records in the same order.
  trainer, _ = loop.build_trainer(cfg)
  ds = tfrecords.make_dataset(records, "train", BATCH, PATCH, training=True,
                              shuffle_buffer=cfg.shuffle_buffer, seed=cfg.seed)
  step = tf.function(trainer.train_step)
  for i, batch in zip((1, 2), ds):
    expected = step(batch)
    for name in ("g_loss", "color", "d_loss", "psnr"):
      np.testing.assert_allclose(got[i][name], float(expected[name]), rtol=2e-4,
                                 err_msg=f"{name} at step {i}")
  assert got[1]["g_loss"] != got[2]["g_loss"]


def test_epochs_end_at_multiples_of_eval_every_and_at_the_last_iteration():
  S = loop.Segment
  assert loop.segments(0, 20000, 1000) == [S(0, 20, 1000)]
  assert loop.segments(0, 3, 2) == [S(0, 1, 2), S(1, 2, 1)]
  assert loop.segments(2, 8, 4) == [S(0, 1, 2), S(1, 2, 4)]     # resumed inside epoch 0
  assert loop.segments(5, 8, 1000) == [S(0, 1, 3)]
  assert loop.segments(5, 13, 4) == [S(1, 2, 3), S(2, 3, 4), S(3, 4, 1)]
  assert loop.segments(8, 8, 4) == []
  for start, last, every in [(0, 7, 3), (4, 11, 2), (5, 5 + 17, 6)]:
    ends, step = [], start
    for seg in loop.segments(start, last, every):
      for epoch in range(seg.initial_epoch, seg.epochs):
        step += seg.steps_per_epoch
        assert epoch == (step - 1) // every
        ends.append(step)
    assert ends == sorted({min(s, last) for s in range(every, last + every, every)
                           if s > start}), (start, last, every)


def test_precision_names_and_deprecated_spellings(caplog):
  assert tiny().precision == "float32"
  assert parse("--phone", "sony", "--precision", "bfloat16").precision == "bfloat16"
  for old, new in (("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")):
    caplog.clear()
    assert parse("--phone", "sony", "--precision", old).precision == new
    assert [r.getMessage() for r in caplog.records] == [
        f"precision {old!r} is deprecated; use {new!r}"]
  trainer, _ = loop.build_trainer(tiny(precision="float16"))
  assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
  assert trainer.generator.dtype_policy.name == "mixed_float16"


def test_second_run_on_a_folder_in_use_is_refused(records, tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  with run_lib.lock_model_dir(str(run)):
    with open(run / "train.lock") as f:
      assert f.read().strip() == str(os.getpid())
    result = subprocess.run(
        [sys.executable, "-m", "dped_tf.cli", "train", "--phone", "sony", "--tfrecord_dir",
         records, "--model_dir", str(run), "--batch_size", "2", "--patch_size", str(PATCH),
         "--vgg_weights", "none"], capture_output=True, text=True, timeout=240,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 2, result.stderr[-2000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and str(run) in lines[0] and f"PID {os.getpid()}" in lines[0], lines
  assert not (run / "checkpoints").exists()  # refused before any work
  with run_lib.lock_model_dir(str(run)):  # released with its holder
    pass
