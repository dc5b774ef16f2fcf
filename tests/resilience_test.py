"""Crash-safe resume (docs/method.md §4 runs are long): the input position follows from the step;
a SIGKILLed run leaves a loadable checkpoint, a SIGTERMed one a checkpoint at the step it
reached, and either restart ends where an uninterrupted run with the same seed ends."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dped_tf.testing.data import write_tiny_records
from dped_tf.dataloaders import tfrecords

PATCH = 32
TRAIN = ["train", "--phone", "sony", "--batch_size", "2", "--patch_size", str(PATCH),
         "--iterations", "8", "--checkpoint_every", "1", "--eval_every", "4",
         "--eval_batches", "1", "--vgg_weights", "none", "--seed", "5", "--deterministic"]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return write_tiny_records(str(tmp_path_factory.mktemp("dped")), train=5, test=2, patch=PATCH, pairs_per_shard=2)


def test_resumed_stream_continues_the_uninterrupted_one(records):
  def take(n, **kw):
    ds = tfrecords.make_dataset(records, "train", 1, PATCH, pairs_per_step=1,
                                shuffle_buffer=3, seed=7, augment=True, **kw)
    return [p.numpy() for p, _ in ds.take(n)]
  full = take(14)
  assert not all(np.array_equal(a, b) for a, b in zip(full[:5], full[5:10]))  # reshuffled
  for start in (1, 5, 6, 12):  # inside the first epoch, at and after epoch boundaries
    for a, b in zip(full[start:], take(14 - start, start_record=start)):
      np.testing.assert_array_equal(a, b)
  shards = [take(6, num_shards=2, shard_index=i) for i in range(2)]
  seen = {a.tobytes() for a in shards[0][:3] + shards[1][:2]}  # one epoch: 3 + 2 records
  assert len(seen) == 5


def _run(records, model_dir, *extra, stderr=subprocess.PIPE):
  return subprocess.Popen([sys.executable, "-m", "dped_tf.cli", *TRAIN, *extra,
                           "--tfrecord_dir", records, "--model_dir", model_dir],
                          stdout=subprocess.PIPE, stderr=stderr, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


DIGEST = re.compile(r"Done at step 8; generator weights (\w+)")


@pytest.fixture(scope="module")
def uninterrupted(records, tmp_path_factory):
  """The generator digest of the same run without interruption."""
  fresh = _run(records, str(tmp_path_factory.mktemp("fresh")))
  out, err = fresh.communicate(timeout=400)
  assert fresh.returncode == 0, err[-3000:]
  assert DIGEST.findall(out), out
  return DIGEST.findall(out)


def _assert_loadable(ckpt_dir):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  latest = tf.train.latest_checkpoint(ckpt_dir)
  assert latest, os.listdir(ckpt_dir)
  reader = tf.train.load_checkpoint(latest)
  step = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
  assert latest.endswith(f"ckpt-{step}")
  return step


def test_sigkill_then_resume_matches_an_uninterrupted_run(records, tmp_path, uninterrupted):
  run = str(tmp_path / "killed")
  ckpt_dir = os.path.join(run, "checkpoints")
  proc = _run(records, run)
  try:
    deadline = time.time() + 180
    while not os.path.exists(os.path.join(ckpt_dir, "checkpoint")):
      assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-3000:]
      time.sleep(0.05)
    time.sleep(0.3)  # land anywhere in the next steps and saves
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.communicate()
  killed_at = _assert_loadable(ckpt_dir)
  assert 1 <= killed_at < 8
  with open(os.path.join(run, "train.lock")) as f:
    assert f.read().strip() == str(proc.pid)  # a stale lock file: the restart goes on

  restarted = _run(records, run)
  out, err = restarted.communicate(timeout=400)
  assert restarted.returncode == 0, err[-3000:]
  assert f"Resuming from step {killed_at}" in out
  assert _assert_loadable(ckpt_dir) == 8

  assert DIGEST.findall(out) == uninterrupted


def test_sigterm_mid_interval_saves_the_step_reached(records, tmp_path, uninterrupted):
  """Checkpoints every 1000 steps: SIGTERM inside the second epoch (steps 5-8) still
  leaves one at the step the run reached (exit 143), and the restart, which first
  finishes that epoch, ends like the uninterrupted run."""
  run = str(tmp_path / "stopped")
  with open(tmp_path / "stderr.txt", "w") as err_file:
    proc = _run(records, run, "--checkpoint_every", "1000", stderr=err_file)
    try:
      lines = []
      for line in proc.stdout:  # plain progress lines: stdout is not a terminal
        assert "\x1b" not in line and "\r" not in line, line
        lines.append(line)
        if line.startswith("Epoch 2/2"):
          os.kill(proc.pid, signal.SIGTERM)
          break
      # Keras' line for the first epoch: its mean losses and the evaluation at step 4.
      assert re.match(r"4/4 - .* - g_loss: .* - test_psnr: ", lines[-2]), lines
      out, _ = proc.communicate(timeout=120)
    finally:
      if proc.poll() is None:
        proc.kill()
        proc.communicate()
  stderr = (tmp_path / "stderr.txt").read_text()
  assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
  stopped_at = _assert_loadable(os.path.join(run, "checkpoints"))
  assert 4 <= stopped_at < 8
  assert f"stopped by SIGTERM at step {stopped_at}; checkpoint saved" in stderr
  assert "Done at step" not in out

  restarted = _run(records, run)
  out, err = restarted.communicate(timeout=400)
  assert restarted.returncode == 0, err[-3000:]
  assert f"Resuming from step {stopped_at}" in out
  assert DIGEST.findall(out) == uninterrupted
