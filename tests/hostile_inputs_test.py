"""Hostile inputs where data enters: one line of error naming the thing, exit 2, nothing
left looking complete."""

import os
import resource
import shutil
import subprocess
import sys

from dped_tf.testing.data import write_dped_folder


def dped_tf_logged(*args, file_limit=None):
  """`dped-tf` with INFO logs off; `file_limit` (bytes) makes the disk 'fill up'."""
  limit = (lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))
           ) if file_limit else None
  return subprocess.run([sys.executable, "-m", "dped_tf.cli", *args], capture_output=True,
                        text=True, preexec_fn=limit,
                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)


def assert_one_line_error(result, *needles):
  """Exit 2 and one error line (absl INFO/WARNING progress lines aside)."""
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("dped-tf ")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  for needle in needles:
    assert needle in errors[0], errors[0]


def test_prepare_rejects_a_duplicate_index(tmp_path):
  root = write_dped_folder(str(tmp_path / "dped"), train=3, test=1, patch=32)
  phone_dir = os.path.join(root, "sony", "training_data", "sony")
  shutil.copy(os.path.join(phone_dir, "1.jpg"), os.path.join(phone_dir, "01.jpg"))
  out = str(tmp_path / "records")
  assert_one_line_error(dped_tf_logged("prepare", "--phone", "sony", "--dped_dir", root,
                                       "--patch_size", "32", "--tfrecord_dir", out), "index 1", "1.jpg")
  assert not os.path.exists(os.path.join(out, "meta.json"))


def test_prepare_on_a_full_disk(tmp_path):
  root = write_dped_folder(str(tmp_path / "dped"), train=8, test=2, patch=32)
  out = str(tmp_path / "records")
  result = dped_tf_logged("prepare", "--phone", "sony", "--dped_dir", root, "--patch_size",
                          "32", "--tfrecord_dir", out, file_limit=4096)
  assert_one_line_error(result, "File too large", out)
  assert not os.path.exists(os.path.join(out, "meta.json"))  # not a finished conversion


def test_train_on_a_truncated_shard(tmp_path):
  from dped_tf.dataloaders import tfrecords  # pylint: disable=import-outside-toplevel
  root = write_dped_folder(str(tmp_path / "dped"), train=4, test=2, patch=32)
  records = str(tmp_path / "records")
  tfrecords.convert_dped_folder(root, "sony", records, 32)
  shard = tfrecords.split_files(records, "train")[0]
  with open(shard, "rb") as f:
    data = f.read()
  with open(shard, "wb") as f:
    f.write(data[:len(data) // 2])
  result = dped_tf_logged("train", "--phone", "sony", "--tfrecord_dir", records,
                          "--model_dir", str(tmp_path / "run"), "--batch_size", "2",
                          "--patch_size", "32", "--iterations", "2", "--vgg_weights", "none")
  assert_one_line_error(result, records, "corrupt TFRecords", "prepare --overwrite")
  assert not os.path.exists(tmp_path / "run" / "checkpoints" / "checkpoint")
