"""Model folders written by earlier versions (tests/fixtures/README.md) still load and resume."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import tensorflow as tf

from dped_tf.testing.data import write_dped_folder

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "run_v0_1")


def test_keras_files_of_a_v0_1_run_load_and_agree():
  from dped_tf.modeling.factory import load_generator  # pylint: disable=import-outside-toplevel
  latest = load_generator(os.path.join(FIXTURE, "generator.keras"))
  step2 = load_generator(os.path.join(FIXTURE, "generator_000002.keras"))
  photo = np.random.default_rng(0).uniform(0, 1, (1, 24, 24, 3)).astype(np.float32)
  out = np.asarray(latest(photo))
  assert out.shape == (1, 24, 24, 3) and np.isfinite(out).all()
  np.testing.assert_array_equal(out, np.asarray(step2(photo)))
  # The weights are those the checkpoint holds for step 2.
  reader = tf.train.load_checkpoint(os.path.join(FIXTURE, "checkpoints", "ckpt-2"))
  # (TensorFlow saves the generator's variables once, under the optimizer that trains them.)
  keys = [k for k in reader.get_variable_to_shape_map()
          if k.startswith("g_optimizer/_trainable_variables/")]
  saved = sorted((tuple(reader.get_tensor(k).shape), float(np.abs(reader.get_tensor(k)).sum()))
                 for k in keys)
  loaded = sorted((tuple(w.shape), float(np.abs(w.numpy()).sum())) for w in latest.weights)
  assert len(saved) == len(loaded)
  np.testing.assert_allclose([s for _, s in saved], [s for _, s in loaded], rtol=1e-6)


def test_a_v0_1_run_resumes_with_its_optimizer_state(tmp_path):
  run = str(tmp_path / "run")
  shutil.copytree(FIXTURE, run)
  root = write_dped_folder(str(tmp_path / "dped"), train=4, test=2, patch=16)
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  result = subprocess.run(
      [sys.executable, "-m", "dped_tf.cli", "train", "--phone", "sony", "--dped_dir", root,
       "--model_dir", run, "--iterations", "3", "--batch_size", "2", "--patch_size", "16",
       "--eval_every", "2", "--checkpoint_every", "2", "--vgg_weights", "none"],
      capture_output=True, text=True, env=env, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Resuming from step 2" in result.stdout
  # The v0.1 record is kept as the run's first segment, this invocation's follows.
  with open(os.path.join(FIXTURE, "run.json")) as f:
    first = json.load(f)
  with open(os.path.join(run, "run.json")) as f:
    segments = json.load(f)["segments"]
  assert segments[0] == first and segments[1]["start_step"] == 2
  assert segments[1]["changes"] == [] and segments[1]["config"]["iterations"] == 3
  reader = tf.train.load_checkpoint(os.path.join(run, "checkpoints", "ckpt-3"))
  counters = {k.split("/")[0]: int(reader.get_tensor(k))
              for k in reader.get_variable_to_shape_map() if "iterations" in k}
  # Both optimizers went on from their restored state (2 steps) rather than from zero.
  assert counters == {"g_optimizer": 3, "d_optimizer": 3}, counters
