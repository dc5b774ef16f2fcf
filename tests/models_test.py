"""Generator and discriminator against docs/method.md §1-2, with an independent tf.nn forward."""

from dped_tf.testing.models import random_weights_model
import keras
import numpy as np
import pytest
import tensorflow as tf

from dped_tf.errors import DpedError
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling.generator import Generator, load_generator
from dped_tf.modeling.layers import InstanceNorm


def np_instance_norm(x, scale, shift, eps=1e-3):
  mean = x.mean(axis=(1, 2), keepdims=True)
  var = x.var(axis=(1, 2), keepdims=True)
  return scale * (x - mean) / np.sqrt(var + eps) + shift


def reference_forward(g, x):
  """docs/method.md §1 written with plain tf.nn ops on the raw arrays (not the Keras layers)."""
  convs = [c.get_weights() for c in g.conv_layers()]
  norms = [(n.scale.numpy(), n.shift.numpy()) for n in g.norm_layers()]

  def conv(x, k):
    w, b = convs[k]
    return tf.nn.conv2d(x, w, 1, "SAME").numpy() + b

  h = np.maximum(conv(x, 0), 0)
  for blk in range(4):
    y = np.maximum(np_instance_norm(conv(h, 1 + 2 * blk), *norms[2 * blk]), 0)
    y = np.maximum(np_instance_norm(conv(y, 2 + 2 * blk), *norms[2 * blk + 1]), 0)
    h = h + y
  h = np.maximum(conv(h, 9), 0)
  h = np.maximum(conv(h, 10), 0)
  return np.tanh(conv(h, 11)) * 0.58 + 0.5


def test_generator_parameter_count():
  g = Generator()
  g.build((None, None, None, 3))
  assert g.count_params() == 401_475
  assert len(g.conv_layers()) == 12 and len(g.norm_layers()) == 8


def test_generator_matches_independent_forward_on_odd_size():
  g = random_weights_model()
  g.conv12.kernel.assign(g.conv12.kernel * 0.4)  # the tanh mostly unsaturated
  x = np.random.default_rng(1).random((2, 37, 53, 3)).astype(np.float32)
  y = g(x).numpy()
  assert y.shape == x.shape and y.dtype == np.float32
  assert y.std() > 0.05 and np.mean(np.abs(y - 0.5) > 0.57) < 0.2  # not saturated
  np.testing.assert_allclose(y, reference_forward(g, x.astype(np.float64)), atol=2e-5)


def test_generator_output_range():
  g = random_weights_model(seed=2)
  for v in g.conv12.weights:
    v.assign(v * 50.0)  # saturate the tanh
  y = g(np.random.default_rng(3).random((1, 40, 40, 3)).astype(np.float32)).numpy()
  assert y.min() > 0.5 - 0.58 - 1e-6 and y.max() < 0.5 + 0.58 + 1e-6
  assert y.min() < 0.0 and y.max() > 1.0  # the scaled tanh does reach past [0, 1]


def test_generator_batch_norm_variant():
  g = Generator(norm="batch")
  g.build((None, None, None, 3))
  trainable = sum(int(np.prod(v.shape)) for v in g.trainable_variables)
  assert trainable == 401_475
  assert g(np.zeros((2, 9, 11, 3), np.float32), training=True).shape == (2, 9, 11, 3)


def test_instance_norm_matches_numpy():
  x = np.random.default_rng(4).normal(2, 3, (2, 5, 6, 4)).astype(np.float32)
  layer = InstanceNorm()
  layer.build(x.shape)
  layer.scale.assign([1.0, 2.0, 0.5, -1.0])
  layer.shift.assign([0.0, 0.1, -0.2, 3.0])
  np.testing.assert_allclose(layer(x).numpy(),
                             np_instance_norm(x.astype(np.float64), layer.scale.numpy(),
                                              layer.shift.numpy()), atol=1e-5)


def test_instance_norm_gradients_match_the_plain_formula():
  # The layer runs a fused batch-norm kernel; its gradients must equal autodiff of docs/method.md §1.
  rng = np.random.default_rng(9)
  x = tf.constant(rng.normal(1, 2, (3, 6, 7, 4)).astype(np.float32))
  upstream = tf.constant(rng.normal(size=(3, 6, 7, 4)).astype(np.float32))
  layer = InstanceNorm()
  layer.build(x.shape)
  layer.scale.assign([1.0, 2.0, 0.5, -1.0])
  layer.shift.assign([0.0, 0.1, -0.2, 3.0])

  def plain(x):
    mean, var = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    return layer.scale * (x - mean) / tf.sqrt(var + 1e-3) + layer.shift

  grads = []
  for fn in (layer, plain):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(fn(x) * upstream)
    grads.append(tape.gradient(loss, [x, layer.scale, layer.shift]))
  for got, want in zip(*grads):
    np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-4)


def test_discriminator_shapes_and_flatten_size():
  d = Discriminator()
  probs = d(np.random.default_rng(5).random((3, 100, 100, 1)).astype(np.float32))
  assert probs.shape == (3, 2)
  np.testing.assert_allclose(probs.numpy().sum(axis=1), 1.0, rtol=1e-6)
  assert d.fc.kernel.shape == (128 * 7 * 7, 1024)
  d64 = Discriminator()
  assert d64(np.zeros((1, 64, 64, 1), np.float32)).shape == (1, 2)
  assert d64.fc.kernel.shape == (128 * 4 * 4, 1024)
  convs = 11 * 11 * 48 + 48 + 5 * 5 * 48 * 128 + 128 + 9 * 128 * 192 + 192 + 9 * 192 * 192 \
      + 192 + 9 * 192 * 128 + 128
  norms = 2 * (128 + 192 + 192 + 128)
  dense = 6272 * 1024 + 1024 + 1024 * 2 + 2
  assert d.count_params() == convs + norms + dense


def test_reference_initialisation():
  g = Generator()
  g.build((None, None, None, 3))
  kernel = g.conv_layers()[1].kernel.numpy()
  assert abs(kernel.std() - 0.0088) < 0.001  # truncated normal, stddev 0.01 before cut
  assert np.abs(kernel).max() <= 0.02 + 1e-7
  np.testing.assert_allclose(g.conv1.bias.numpy(), 0.01)


def test_mixed_precision_output_is_float32():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  g = Generator()
  y = g(np.random.default_rng(6).random((1, 16, 16, 3)).astype(np.float32))
  assert y.dtype == tf.float32
  assert g.conv1.compute_dtype == "bfloat16" and g.conv1.kernel.dtype == "float32"


def test_save_and_load_generator(tmp_path):
  g = random_weights_model(seed=7)
  x = np.random.default_rng(8).random((1, 20, 24, 3)).astype(np.float32)
  path = str(tmp_path / "g.keras")
  g.save(path)
  loaded = load_generator(path)
  np.testing.assert_allclose(loaded(x).numpy(), g(x).numpy(), atol=1e-6)


def test_load_generator_names_the_problem(tmp_path):
  empty, truncated = tmp_path / "empty.keras", tmp_path / "truncated.keras"
  empty.write_bytes(b"")
  g = random_weights_model(seed=10)
  g.save(str(tmp_path / "g.keras"))
  truncated.write_bytes((tmp_path / "g.keras").read_bytes()[:1000])
  for path in (empty, truncated):
    with pytest.raises(DpedError, match=f"{path.name}: not a .keras model archive"):
      load_generator(str(path))
  with pytest.raises(DpedError, match="model file not found"):
    load_generator(str(tmp_path / "missing.keras"))
