"""Shared fixtures (the helpers themselves live in `dped_tf.testing`)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from dped_tf.testing.data import write_dped_folder  # noqa: E402


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
