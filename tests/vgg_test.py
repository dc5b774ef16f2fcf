"""The VGG-19 relu5_4 content network and its three weight sources (docs/method.md §3)."""

import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest
import scipy.io

from dped_tf.errors import DpedError
from dped_tf.modeling import vgg


@pytest.fixture(scope="module")
def random_weights():
  """16 (kernel, bias) pairs in Keras layout (BGR input), small enough to stay finite."""
  rng = np.random.default_rng(0)
  weights, cin = [], 3
  for name in vgg.CONV_NAMES:
    cout = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}[name[5]]
    kernel = rng.normal(0, np.sqrt(2.0 / (9 * cin)), (3, 3, cin, cout)).astype(np.float32)
    weights.append((kernel, rng.normal(0, 0.01, cout).astype(np.float32)))
    cin = cout
  return weights


def write_legacy_h5(path, weights):
  """Keras' legacy weights layout, as in vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5."""
  layer_names = ["input_1", *[n for n in (
      "block1_conv1", "block1_conv2", "block1_pool", "block2_conv1", "block2_conv2",
      "block2_pool", "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
      "block3_pool", "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
      "block4_pool", "block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4",
      "block5_pool")]]
  by_name = dict(zip(vgg.CONV_NAMES, weights))
  with h5py.File(path, "w") as f:
    f.attrs["layer_names"] = [n.encode() for n in layer_names]
    f.attrs["backend"] = b"tensorflow"
    f.attrs["keras_version"] = b"2.1.5"
    for name in layer_names:
      g = f.create_group(name)
      if name in by_name:
        g.attrs["weight_names"] = [f"{name}_W_1:0".encode(), f"{name}_b_1:0".encode()]
        g.create_dataset(f"{name}_W_1:0", data=by_name[name][0])
        g.create_dataset(f"{name}_b_1:0", data=by_name[name][1])
      else:
        g.attrs["weight_names"] = []


def write_matconvnet(path, weights):
  """MatConvNet layout: layers{i}.weights = {kernel [W, H, in, out], bias}, RGB input."""
  convs = iter(weights)
  layers = np.empty((1, len(vgg.MATCONVNET_LAYERS)), dtype=object)
  for i, name in enumerate(vgg.MATCONVNET_LAYERS):
    cell = np.empty((1, 2), dtype=object)
    if name.startswith("conv"):
      kernel, bias = next(convs)
      if name == "conv1_1":
        kernel = kernel[:, :, ::-1, :]  # Keras' first layer reads BGR, MatConvNet's RGB
      cell[0, 0] = np.transpose(kernel, (1, 0, 2, 3))
      cell[0, 1] = bias.reshape(-1, 1)
    else:
      cell[0, 0], cell[0, 1] = np.zeros((0, 0)), np.zeros((0, 0))
    layers[0, i] = {"weights": cell, "name": name, "type": name[:4]}
  scipy.io.savemat(path, {"layers": layers})


@pytest.fixture(scope="module")
def images():
  return np.random.default_rng(1).random((2, 100, 100, 3)).astype(np.float32)


def test_mat_and_h5_sources_give_the_same_features(tmp_path, random_weights, images):
  h5_path, mat_path = str(tmp_path / "vgg19_notop.h5"), str(tmp_path / "vgg19.mat")
  write_legacy_h5(h5_path, random_weights)
  write_matconvnet(mat_path, random_weights)
  net_h5, info_h5 = vgg.load_content_network(h5_path)
  net_mat, info_mat = vgg.load_content_network(mat_path)
  assert (info_h5.channel_order, info_mat.channel_order) == ("bgr", "rgb")
  assert not info_h5.fallback and not info_mat.fallback
  f_h5, f_mat = net_h5(images).numpy(), net_mat(images).numpy()
  assert f_h5.shape == (2, 7, 7, 512)  # SAME pooling: 100 -> 50 -> 25 -> 13 -> 7
  assert f_h5.std() > 0  # not all dead
  np.testing.assert_allclose(f_mat, f_h5, rtol=1e-4, atol=1e-3 * np.abs(f_h5).max())


def test_features_equal_keras_vgg19_block5_conv4(tmp_path, random_weights):
  # At a multiple of 16 px SAME and VALID pooling agree, so Keras' own VGG19 with its
  # own preprocess_input is an independent reference.
  h5_path = str(tmp_path / "vgg19_notop.h5")
  write_legacy_h5(h5_path, random_weights)
  net, _ = vgg.load_content_network(h5_path)
  ref = keras.applications.VGG19(include_top=False, weights=None, input_shape=(112, 112, 3))
  for name, (k, b) in zip(vgg.CONV_NAMES, random_weights):
    ref.get_layer(name).set_weights([k, b])
  trunk = keras.Model(ref.input, ref.get_layer("block5_conv4").output)
  x = np.random.default_rng(2).random((1, 112, 112, 3)).astype(np.float32)
  expected = trunk(keras.applications.vgg19.preprocess_input(x * 255.0)).numpy()
  np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-4,
                             atol=1e-4 * np.abs(expected).max())


def test_content_network_is_frozen_float32_under_mixed_precision():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  net, info = vgg.load_content_network("none")
  assert info.fallback and "RANDOM" in info.warning
  assert net.trainable_variables == [] and len(net.weights) == 32
  assert all(layer.compute_dtype == "float32" for layer in net.conv_layers())
  assert net(np.zeros((1, 32, 32, 3), np.float32)).dtype == "float32"


def test_random_weights_are_seeded():
  a, _ = vgg.load_content_network("none", seed=3)
  b, _ = vgg.load_content_network("none", seed=3)
  np.testing.assert_array_equal(a.conv_layers()[5].kernel.numpy(),
                                b.conv_layers()[5].kernel.numpy())


def test_bad_sources(tmp_path):
  with pytest.raises(DpedError, match="not found"):
    vgg.load_content_network(str(tmp_path / "missing.mat"))
  junk = tmp_path / "junk.mat"
  junk.write_bytes(b"not a mat file")
  with pytest.raises(DpedError, match="junk.mat"):
    vgg.load_content_network(str(junk))


def test_imagenet_unreachable_is_a_one_line_error(tmp_path):
  # A dead proxy and an empty Keras cache make the download fail wherever this runs.
  code = ("from dped_tf.modeling import vgg\n"
          "try:\n  vgg.load_content_network('imagenet')\n"
          "except vgg.DpedError as e:\n  print('ERR', e)\n")
  env = {"KERAS_HOME": str(tmp_path), "HTTPS_PROXY": "http://127.0.0.1:9",
         "HTTP_PROXY": "http://127.0.0.1:9", "PATH": "/usr/bin:/bin",
         "TF_CPP_MIN_LOG_LEVEL": "3"}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=120)
  line = [l for l in out.stdout.splitlines() if l.startswith("ERR")]
  assert line, out.stdout + out.stderr
  assert "--vgg_weights=" in line[0] and ".mat" in line[0]


def test_bfloat16_content_network_is_close_to_float32(random_weights, images, tmp_path):
  h5_path = str(tmp_path / "vgg19_notop.h5")
  write_legacy_h5(h5_path, random_weights)
  f32, _ = vgg.load_content_network(h5_path)
  bf16, _ = vgg.load_content_network(h5_path, compute_dtype="bfloat16")
  assert bf16.conv_layers()[0].compute_dtype == "bfloat16"
  assert bf16.conv_layers()[0].kernel.dtype == "float32" and bf16.trainable_variables == []
  a, b = f32(images).numpy(), bf16(images).numpy()
  assert b.dtype == np.float32
  rel = np.linalg.norm(a - b) / np.linalg.norm(a)
  assert 0 < rel < 0.05, rel
  with pytest.raises(ValueError):
    vgg.ContentNetwork(compute_dtype="float16")
