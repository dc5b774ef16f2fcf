"""Shared fixtures: tiny DPED-layout folders made from a real photo."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from skimage import data as skdata  # noqa: E402


def write_dped_folder(root, phone="sony", train=8, test=4, patch=32, seed=0):
  """DPED layout with `train`/`test` aligned pairs of `patch`-px JPEGs cut from
  scikit-image's astronaut photo; the phone side darker and noisier."""
  rng = np.random.default_rng(seed)
  photo = skdata.astronaut()[..., ::-1]  # BGR for OpenCV
  for split, count in (("train", train), ("test", test)):
    base = (os.path.join(root, phone, "training_data") if split == "train"
            else os.path.join(root, phone, "test_data", "patches"))
    for side in (phone, "canon"):
      os.makedirs(os.path.join(base, side), exist_ok=True)
    for i in range(count):
      y, x = rng.integers(0, photo.shape[0] - patch, 2)
      dslr = photo[y:y + patch, x:x + patch]
      noisy = dslr * 0.8 + rng.normal(0, 6, dslr.shape)
      cv2.imwrite(os.path.join(base, "canon", f"{i}.jpg"), dslr)
      cv2.imwrite(os.path.join(base, phone, f"{i}.jpg"), np.clip(noisy, 0, 255).astype(np.uint8))
  os.makedirs(os.path.join(root, phone, "test_data", "full_size_test_images"), exist_ok=True)
  return root


def write_tiny_records(tmp_path_factory, train, test, patch=32, pairs_per_shard=2000):
  """A tiny DPED folder (`write_dped_folder`) converted to TFRecords; returns their folder."""
  from dped_tf.dataloaders import tfrecords  # pylint: disable=import-outside-toplevel
  root = str(tmp_path_factory.mktemp("dped"))
  write_dped_folder(root, train=train, test=test, patch=patch)
  out = os.path.join(root, "sony", "tfrecords")
  tfrecords.convert_dped_folder(root, "sony", out, patch, pairs_per_shard=pairs_per_shard)
  return out


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


def random_weights_model(kind="dped", norm="instance", seed=0):
  """A built generator (`kind` dped/johnson: `Generator(norm)`; srcnn: `SRCNN`) with
  He-scaled random weights and non-trivial norm parameters and statistics, so that every
  layer (and the instance-norm statistics) matters to the output. Used by the tests and
  experiments/bench_inference.py."""
  # pylint: disable=import-outside-toplevel
  from dped_tf.modeling.baselines import make_generator
  rng = np.random.default_rng(seed)
  model = make_generator(kind, norm)
  model.build((None, None, None, 3))
  for layer in model.layers if kind == "srcnn" else model.conv_layers():
    k = layer.kernel.shape
    layer.kernel.assign(rng.normal(0, np.sqrt(2 / (k[0] * k[1] * k[2])), k))
    layer.bias.assign(rng.normal(0, 0.1, k[3]))
  for layer in [] if kind == "srcnn" else model.norm_layers():
    if norm == "instance":
      layer.shift.assign(rng.normal(0, 0.3, 64))
      layer.scale.assign(rng.uniform(0.5, 1.5, 64))
    else:
      layer.beta.assign(rng.normal(0, 0.3, 64))
      layer.gamma.assign(rng.uniform(0.5, 1.5, 64))
      layer.moving_mean.assign(rng.normal(0, 0.5, 64))
      layer.moving_variance.assign(rng.uniform(0.5, 2.0, 64))
  return model
