"""Building blocks shared by the generator and the discriminator."""

import keras
import tensorflow as tf


class InstanceNorm(keras.layers.Layer):
  """Instance normalisation of the released DPED code (docs/method.md §1).

  `scale * (x - mean) / sqrt(var + eps) + shift`, with mean and variance over H and W
  of each image and channel. Computed by the fused (oneDNN) batch-norm kernel with the
  images moved into the channel axis ([B, H, W, C] -> [1, H, W, B*C]): one kernel for
  the forward and one for the backward pass instead of a chain of elementwise ops, with
  float32 statistics whatever the compute dtype. The shift is created before the
  scale, the order of the released checkpoints' unnamed variables.
  """

  def __init__(self, epsilon=1e-3, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    channels = input_shape[-1]
    self.shift = self.add_weight(name="shift", shape=(channels,), initializer="zeros")
    self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")

  def call(self, x):
    shape = tf.shape(x)
    batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
    stacked = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, height, width, -1])
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        stacked, tf.tile(tf.cast(self.scale, tf.float32), [batch]),
        tf.tile(tf.cast(self.shift, tf.float32), [batch]), epsilon=self.epsilon,
        is_training=True)
    y = tf.transpose(tf.reshape(y, [height, width, batch, channels]), [2, 0, 1, 3])
    return tf.cast(y, self.compute_dtype)

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "epsilon": self.epsilon}


def reference_conv(filters, kernel_size, strides=1, activation=None, name=None):
  """Conv2D with the reference initialisation: truncated normal 0.01, biases 0.01."""
  return keras.layers.Conv2D(
      filters, kernel_size, strides=strides, padding="same", activation=activation,
      kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
      bias_initializer=keras.initializers.Constant(0.01), name=name)


def make_norm(norm, name):
  """`instance` (released code) or `batch` (the paper's text)."""
  if norm == "instance":
    return InstanceNorm(name=name)
  if norm == "batch":
    return keras.layers.BatchNormalization(epsilon=1e-3, name=name)
  raise ValueError(f"norm must be 'instance' or 'batch', got {norm!r}")
