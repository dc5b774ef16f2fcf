"""Shared fixtures (the helpers themselves live in `dped_tf.testing`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from dped_tf.testing.data import write_dped_folder  # noqa: E402


EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "experiments")


@pytest.fixture
def run_experiment():
  """Runs `python experiments/NAME.py ARGS` as a user does; returns its output, failing the
  test with that output when the script fails."""
  def run(name, *args, timeout=600):
    proc = subprocess.run([sys.executable, os.path.join(EXPERIMENTS, f"{name}.py"), *args],
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
  return run


@pytest.fixture
def tiny_dped(tmp_path):
  return write_dped_folder(str(tmp_path / "dped"))


@pytest.fixture(autouse=True)
def float32_policy():
  """Every test starts and ends under the float32 policy (mixed precision is global)."""
  import keras  # pylint: disable=import-outside-toplevel
  keras.mixed_precision.set_global_policy("float32")
  yield
  keras.mixed_precision.set_global_policy("float32")
