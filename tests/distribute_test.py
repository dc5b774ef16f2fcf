"""tf.distribute training (docs/method.md §4 at scale): MirroredStrategy equals one device on the
same global batch; two MultiWorkerMirroredStrategy workers on localhost stay in sync.

The children run in fresh processes: logical devices and collective ops must be set up
before TensorFlow starts. `python -m tests.distribute_test mirrored RECORDS` (from the
repository root) is the equivalence child; it prints one JSON line.
"""

import json
import os
import re
import socket
import subprocess
import sys

import pytest

from dped_tf.testing.data import write_tiny_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATCH, BATCH = 32, 4  # global batch: 2 x 4 pairs (generator + critic sub-steps)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return write_tiny_records(str(tmp_path_factory.mktemp("dped")), train=8, test=2, patch=PATCH)


def _env(**extra):
  return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def test_mirrored_step_equals_default_step(records):
  result = subprocess.run([sys.executable, "-m", "tests.distribute_test", "mirrored", records],
                          capture_output=True, text=True, env=_env(), timeout=400,
                          check=False, cwd=ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  diffs = json.loads(result.stdout.strip().splitlines()[-1])
  print(diffs)
  assert diffs["initial"] == 0.0 and diffs["moved"] > 4e-4
  # The gradients (without the loss scaling of `replica_share` they differ by 40).
  assert diffs["gradients"] < 1e-5 * diffs["max_gradient"], diffs
  # The updated weights, where Adam's first step is not amplified round-off.
  assert diffs["weights_where_gradient_above_1e-2"] < 1e-5, diffs
  assert diffs["covered"] > 0.3, diffs
  assert diffs["logs"] < 1e-5, diffs  # relative, every logged loss and metric


def _free_ports(n):
  socks = [socket.socket() for _ in range(n)]
  for s in socks:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in socks]
  for s in socks:
    s.close()
  return ports


def test_two_workers_on_localhost_stay_in_sync(records, tmp_path):
  cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
  procs = []
  try:
    for i in range(2):
      scratch = tmp_path / f"tmp{i}"
      scratch.mkdir()
      tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
      cmd = [sys.executable, "-m", "dped_tf.cli", "train", "--phone", "sony",
             "--strategy", "multi_worker", "--tfrecord_dir", records,
             "--model_dir", str(tmp_path / f"run{i}"), "--iterations", "3",
             "--batch_size", "2", "--patch_size", str(PATCH), "--checkpoint_every", "1",
             "--eval_every", "3", "--eval_batches", "1", "--vgg_weights", "none"]
      procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=_env(TF_CONFIG=tf_config,
                                                        TMPDIR=str(scratch))))
    outs = [p.communicate(timeout=400) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  fingerprints = []
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
    fingerprints += re.findall(r"Done at step 3; generator weights (\w+)", out)
  assert len(fingerprints) == 2 and fingerprints[0] == fingerprints[1], fingerprints
  chief_ckpts = os.listdir(tmp_path / "run0" / "checkpoints")
  assert "checkpoint" in chief_ckpts and "ckpt-3.index" in chief_ckpts
  assert not os.path.exists(tmp_path / "run1")            # the other worker wrote nothing
  assert not os.listdir(tmp_path / "tmp1")                # and removed its scratch copy


def _mirrored_child(records):
  """One fit() step under the default strategy and under MirroredStrategy on 2 logical CPUs,
  same initial weights, same global batch, same seed; max abs differences as JSON."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  from dped_tf import configs  # pylint: disable=import-outside-toplevel
  from dped_tf.training import loop  # pylint: disable=import-outside-toplevel
  from dped_tf.dataloaders import tfrecords  # pylint: disable=import-outside-toplevel

  cfg = configs.TrainConfig(batch_size=BATCH, patch_size=PATCH, vgg_weights="none", seed=3)
  phone, dslr = next(iter(tfrecords.make_dataset(records, "train", BATCH, PATCH, seed=1)))
  strategy = tf.distribute.MirroredStrategy(["CPU:0", "CPU:1"])
  local = BATCH // 2

  def replica_batch(r):
    # Replica r: its slice of the generator half, then its slice of the critic half.
    part = lambda x: tf.concat([x[r * local:(r + 1) * local],
                                x[BATCH + r * local:BATCH + (r + 1) * local]], 0)
    return part(phone), part(dslr)

  def weights(trainer):
    return [w.numpy() for w in trainer.generator.weights + trainer.discriminator.weights]

  def trainable(trainer):
    return [w.numpy() for w in trainer.generator.trainable_weights
            + trainer.discriminator.trainable_weights]

  def gradients(trainer):
    # Adam's first moments after one step are (1 - beta_1) * gradient.
    return [m.numpy() / 0.1 for opt in (trainer.g_optimizer, trainer.d_optimizer)
            for m in opt._momentums]  # pylint: disable=protected-access

  def max_diff(a, b):
    return float(max((np.max(np.abs(x - y)) for x, y in zip(a, b) if x.size), default=0.0))

  single, _ = loop.build_trainer(cfg)
  with strategy.scope():
    mirrored, _ = loop.build_trainer(cfg)
  start = weights(single)
  out = {"initial": max_diff(start, weights(mirrored))}
  # One iteration through fit() on each: the default strategy gets the global batch,
  # MirroredStrategy one slice per replica (its input pipeline's elements go to the
  # replicas in turn).
  logs_single = single.fit(tf.data.Dataset.from_tensors((phone, dslr)), steps_per_epoch=1,
                           epochs=1, verbose=0, shuffle=False).history
  slices = [replica_batch(r) for r in range(2)]
  per_replica = tf.data.Dataset.from_tensor_slices(
      tuple(tf.stack([s[i] for s in slices]) for i in range(2)))
  logs_mirrored = mirrored.fit(strategy.distribute_datasets_from_function(
      lambda ctx: per_replica), steps_per_epoch=1, epochs=1, verbose=0,
                               shuffle=False).history
  assert int(single.step.numpy()) == int(mirrored.step.numpy()) == 1
  # Adam's first step is lr * g / (|g| + 1e-7): float32 round-off in gradients that are
  # zero in exact arithmetic (conv biases before instance norm) becomes a full lr-sized
  # step either way. Weights are compared where |g| > 1e-2 (a 5e-5 gradient error then
  # moves a weight by under 3e-6), with the share of the model that covers.
  masks = [np.abs(g) > 1e-2 for g in gradients(single)]
  out.update(
      weights=max_diff(weights(single), weights(mirrored)),
      moved=max_diff(start, weights(single)),
      gradients=max_diff(gradients(single), gradients(mirrored)),
      max_gradient=float(max(np.max(np.abs(g)) for g in gradients(single))),
      covered=float(sum(m.sum() for m in masks) / sum(m.size for m in masks)),
      logs=max(abs(logs_single[k][0] - logs_mirrored[k][0]) / max(1.0, abs(logs_mirrored[k][0]))
               for k in logs_single))
  out["weights_where_gradient_above_1e-2"] = max_diff(
      [w[m] for w, m in zip(trainable(single), masks)],
      [w[m] for w, m in zip(trainable(mirrored), masks)])
  print(json.dumps(out))


if __name__ == "__main__":
  if sys.argv[1] == "mirrored":
    _mirrored_child(sys.argv[2])
