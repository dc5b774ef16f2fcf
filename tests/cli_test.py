"""`dped-tf` end to end in subprocesses: training, resuming, one-line errors."""

import json
import os
import subprocess
import sys

import pytest

from dped_tf.testing.data import write_dped_folder

TINY = ["--batch_size", "2", "--patch_size", "32", "--eval_every", "2",
        "--checkpoint_every", "1", "--vgg_weights", "none"]


def dped_tf(*args, env=None, timeout=300):
  full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
  return subprocess.run([sys.executable, "-m", "dped_tf.cli", *args], capture_output=True,
                        text=True, env=full_env, timeout=timeout)


def assert_one_line_error(result, *needles):
  assert result.returncode == 2, result.stdout + result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
  for needle in needles:
    assert needle in lines[0]


def test_train_writes_checkpoints_and_resumes(tmp_path):
  root = write_dped_folder(str(tmp_path / "dped"), train=6, test=3, patch=32)
  run = str(tmp_path / "run")
  first = dped_tf("train", "--phone", "sony", "--dped_dir", root, "--model_dir", run,
                  "--iterations", "2", *TINY)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "Resuming" not in first.stdout
  # Off a terminal: a plain line at the last iteration (--log_every).
  assert any(l.startswith("step 2/2 ") and l.endswith("s/iteration)")
             for l in first.stdout.splitlines()), first.stdout
  ckpts = os.listdir(os.path.join(run, "checkpoints"))
  assert "ckpt-2.index" in ckpts and "checkpoint" in ckpts
  for name in ("generator.keras", "generator_000002.keras", "images/step_000002.png",
               "summary.md", "metrics.jsonl", "run.json"):
    assert os.path.isfile(os.path.join(run, name)), name
  assert any(f.startswith("events") for f in os.listdir(os.path.join(run, "logs")))
  with open(os.path.join(run, "summary.md")) as f:
    assert f.readline().startswith("**WARNING: VGG-19 content network uses RANDOM weights")
  with open(os.path.join(run, "metrics.jsonl")) as f:
    record = json.loads(f.readline())
  assert record["step"] == 2 and 0 < record["ssim"] <= 1 and record["warnings"]

  second = dped_tf("train", "--phone", "sony", "--dped_dir", root, "--model_dir", run,
                   "--iterations", "3", *TINY)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "Resuming from step 2" in second.stdout
  assert "ckpt-3.index" in os.listdir(os.path.join(run, "checkpoints"))
  with open(os.path.join(run, "metrics.jsonl")) as f:
    assert [json.loads(l)["step"] for l in f] == [2, 3]


def test_missing_dataset_folder(tmp_path):
  assert_one_line_error(dped_tf("train", "--phone", "sony", "--dped_dir",
                                str(tmp_path / "nope")), "nope", "not found")


def test_phone_name_rules(tmp_path):
  """Any camera name of letters, digits, - and _ is a phone; others are refused."""
  assert_one_line_error(dped_tf("train", "--phone", "my phone!"), "--phone", "my phone!")
  assert_one_line_error(dped_tf("train", "--phone", "../etc"), "--phone", "../etc")
  missing = tmp_path / "nope"
  assert_one_line_error(dped_tf("train", "--phone", "pixel-8_pro", "--dped_dir",
                                str(missing)), "nope", "not found")


def test_imagenet_weights_unreachable(tmp_path):
  root = write_dped_folder(str(tmp_path / "dped"), train=2, test=1, patch=32)
  dead = {"KERAS_HOME": str(tmp_path / "keras"), "HTTPS_PROXY": "http://127.0.0.1:9",
          "HTTP_PROXY": "http://127.0.0.1:9"}
  result = dped_tf("train", "--phone", "sony", "--dped_dir", root, "--model_dir",
                   str(tmp_path / "run"), env=dead)
  assert_one_line_error(result, "ImageNet VGG-19", "--vgg_weights=")
  assert not os.path.exists(os.path.join(root, "sony", "tfrecords"))  # failed before work


@pytest.mark.parametrize("flag", ["--batch_size=-1", "--iterations=0"])
def test_flags_out_of_range(flag):
  assert_one_line_error(dped_tf("train", "--phone", "sony", flag), flag.split("=")[0][2:])


def test_help_lists_commands_and_flags():
  top = dped_tf("--help")
  assert top.returncode == 0 and "train" in top.stdout and "prepare" in top.stdout
  sub = dped_tf("train", "--help")
  assert sub.returncode == 0 and "--vgg_weights" in sub.stdout and "--precision" in sub.stdout


@pytest.mark.parametrize("combination", [["--architecture", "srcnn", "--init", "identity"],
                                         ["--architecture", "srcnn", "--norm", "batch"]])
def test_refused_model_combinations(tmp_path, combination):
  records = tmp_path / "records"
  records.mkdir()
  (records / "meta.json").write_text("{}")
  assert_one_line_error(dped_tf("train", "--phone", "sony", "--tfrecord_dir", str(records),
                                *combination), "srcnn")


def test_init_from_another_norm_is_refused(tmp_path):
  import keras  # pylint: disable=import-outside-toplevel
  from dped_tf.modeling.generator import Generator  # pylint: disable=import-outside-toplevel
  root = write_dped_folder(str(tmp_path / "dped"), train=2, test=1, patch=32)
  path = str(tmp_path / "batch_norm.keras")
  generator = Generator(norm="batch")
  generator.build((None, None, None, 3))
  keras.Model.save(generator, path)
  result = dped_tf("train", "--phone", "sony", "--dped_dir", root, "--model_dir",
                   str(tmp_path / "run"), "--init_from", path, "--iterations", "1", *TINY)
  assert_one_line_error(result, path, "batch norm", "instance norm")
