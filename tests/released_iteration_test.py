"""One `DPEDTrainer` iteration against the authors' released TF1 training graph
(`dped_tf.testing.authors_training`), from the same weights, batch and critic choices:
the losses of both steps agree within 3e-7 (relative), and so do the Adam steps wherever
the gradient is more than rounding noise."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dped_tf import configs
from dped_tf.training import loop
from dped_tf.modeling.vgg import ContentNetwork, VGGSource
from dped_tf.testing.authors_graph import checkpoint_arrays
from dped_tf.testing.authors_training import AuthorsTraining, critic_arrays
from dped_tf.testing.models import random_weights_model

BATCH, PATCH = 4, 32


def one_iteration(learning_rate):
  """(DPEDTrainer's logged values, the TF1 graph's, both after one iteration)."""
  cfg = configs.TrainConfig(batch_size=BATCH, patch_size=PATCH, vgg_weights="none",
                            precision="float32", learning_rate=learning_rate)
  vgg = ContentNetwork("rgb", seed=0)  # RGB input, as the released MatConvNet weights take it
  vgg.build((None, None, None, 3))
  trainer, _ = loop.build_trainer(cfg, vgg=(vgg, VGGSource("none", "rgb", True)))
  trainer.generator.set_weights(random_weights_model("dped", "instance", seed=3).get_weights())
  rng = np.random.default_rng(1)
  for w in trainer.discriminator.weights:  # He-scaled: the critic's choices matter
    fan_in = np.prod(w.shape[:-1]) if len(w.shape) > 1 else 1
    w.assign(rng.normal(0, (2 / fan_in) ** 0.5 if len(w.shape) > 1 else 0.1, w.shape))
  authors = AuthorsTraining(
      BATCH, PATCH, arrays={"generator": checkpoint_arrays(trainer.generator),
                            "critic": critic_arrays(trainer.discriminator)},
      vgg_weights=[(np.asarray(c.kernel), np.asarray(c.bias)) for c in vgg.conv_layers()],
      learning_rate=learning_rate)
  phone = rng.uniform(0.1, 0.9, (2 * BATCH, PATCH, PATCH, 3)).astype(np.float32)
  dslr = np.clip(phone * 1.1 + rng.normal(0, 0.05, phone.shape), 0, 1).astype(np.float32)
  # The critic's choices: the trainer's first draw from its seed.
  swaps = np.asarray(keras.random.randint([BATCH], 0, 2,
                                          seed=keras.random.SeedGenerator(cfg.seed)))
  assert 0 < swaps.sum() < BATCH
  logged = tf.function(trainer.train_step)((tf.constant(phone), tf.constant(dslr)))
  return trainer, {k: float(v) for k, v in logged.items()}, authors, authors.iteration(
      phone, dslr, swaps)


def test_losses_of_both_steps_match_the_released_graph():
  # A learning rate too small to move any float32 weight: the critic step sees the same
  # generator in both.
  _, ours, _, theirs = one_iteration(1e-30)
  assert set(theirs) <= set(ours)
  for name, value in theirs.items():
    assert ours[name] == pytest.approx(value, rel=3e-7, abs=1e-12), name
  assert abs(theirs["texture"]) > 1 and theirs["d_loss"] > 1


def test_adam_steps_match_the_released_graph():
  trainer, _, authors, _ = one_iteration(5e-4)
  ours, theirs = checkpoint_arrays(trainer.generator), authors.generator_weights()
  # The biases of the eight convolutions followed by an instance norm have a zero gradient
  # (the norm takes the mean out); Adam's first step turns their rounding noise into
  # +-learning rate steps in both.
  noise = {f"generator/b{i}" for i in range(2, 10)}
  start = checkpoint_arrays(random_weights_model("dped", "instance", seed=3))
  diffs = np.concatenate([np.abs(ours[k] - theirs[k]).ravel() for k in ours if k not in noise])
  moved = np.concatenate([np.abs(ours[k] - start[k]).ravel() for k in ours if k not in noise])
  assert np.median(moved) > 1e-4  # the step moved the weights
  # Elsewhere a near-zero gradient's sign can flip by rounding too: a few elements only.
  assert np.mean(diffs > 1e-6) < 1e-4, np.mean(diffs > 1e-6)
