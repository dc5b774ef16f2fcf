"""The instance norm of the released code (docs/method.md §1) against numpy and autodiff."""

import numpy as np
import tensorflow as tf

from dped_tf.modeling.layers import InstanceNorm
from dped_tf.testing.numpy_layers import np_instance_norm


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
  # The layer runs a fused batch-norm kernel; its gradients must equal autodiff of
  # docs/method.md §1.
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
