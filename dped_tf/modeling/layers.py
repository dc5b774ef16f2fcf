"""Building blocks shared by the generator and the discriminator."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="dped_tf")
class InstanceNorm(keras.layers.Layer):
  """Instance normalisation of the released DPED code (docs/method.md §1).

  `scale * (x - mean) / sqrt(var + eps) + shift`, with mean and variance over H and W
  of each image and channel. Computed by the fused (oneDNN) batch-norm kernel with the
  images moved into the channel axis ([B, H, W, C] -> [1, H, W, B*C]): one kernel for
  the forward and one for the backward pass instead of a chain of elementwise ops, with
  float32 statistics whatever the compute dtype. The shift is created before the
  scale, the order of the released checkpoints' unnamed variables.

  `call(x, stats)` normalises one image with per-channel (mean, variance) measured
  outside, over the whole image (exact tiled inference, docs/method.md §7);
  `partial_moments` measures one tile's share of them.
  """

  def __init__(self, epsilon=1e-3, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon
    # Given statistics stay float32 under any policy; `call` casts `x` itself.
    self._convert_input_args = False
    self._allow_non_tensor_positional_args = True

  def build(self, input_shape):
    channels = input_shape[-1]
    self.shift = self.add_weight(name="shift", shape=(channels,), initializer="zeros")
    self.scale = self.add_weight(name="scale", shape=(channels,), initializer="ones")

  def call(self, x, stats=None):
    x = tf.cast(x, self.compute_dtype)
    if stats is not None:
      mean, variance = (tf.cast(v, tf.float32) for v in stats)
      y, _, _ = tf.compat.v1.nn.fused_batch_norm(
          x, tf.cast(self.scale, tf.float32), tf.cast(self.shift, tf.float32), mean=mean,
          variance=variance, epsilon=self.epsilon, is_training=False)
      return tf.cast(y, self.compute_dtype)
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

  @staticmethod
  def partial_moments(x):
    """(count, mean, M2) per channel of a [1, h, w, C] map, in float32, from one pass of
    the fused kernel (its variance has the n - 1 divisor); tiles combine them exactly."""
    ones, zeros = tf.ones(x.shape[-1:]), tf.zeros(x.shape[-1:])
    _, mean, var = tf.compat.v1.nn.fused_batch_norm(x, ones, zeros, is_training=True)[:3]
    n = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return n, mean, tf.where(n > 1, var * (n - 1), tf.zeros_like(var))

  def get_config(self):
    return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="dped_tf")
class BiasAddConv2D(keras.layers.Conv2D):
  """Conv2D whose bias is a `tf.nn.bias_add`, which TF's graph optimiser fuses with the
  convolution and its ReLU into one oneDNN kernel (Keras adds a broadcast tensor)."""

  def call(self, inputs):
    outputs = tf.nn.bias_add(self.convolution_op(inputs, self.kernel),
                             tf.cast(self.bias, self.compute_dtype))
    return outputs if self.activation is None else self.activation(outputs)


@keras.saving.register_keras_serializable(package="dped_tf")
class ShiftedSumConv2D(BiasAddConv2D):
  """A stride-1 SAME Conv2D for few output channels (the generator's 9x9 64 -> 3 conv12),
  computed as a kh x 1 convolution to kw * filters channels (one group per column
  offset) and kw shifted sums in float32. The same products as the direct form, ~3x
  faster on oneDNN, which handles 3 output channels poorly. Same variables as Conv2D."""

  def convolution_op(self, inputs, kernel):
    kh, kw, cin, cout = kernel.shape
    rows = tf.reshape(tf.transpose(kernel, [0, 2, 1, 3]), [kh, 1, cin, kw * cout])
    y = tf.cast(tf.nn.conv2d(inputs, rows, 1, "SAME"), tf.float32)
    y = tf.pad(y, [[0, 0], [0, 0], [(kw - 1) // 2, kw // 2], [0, 0]])
    width = tf.shape(y)[2] - (kw - 1)
    total = tf.add_n([y[:, :, j:j + width, cout * j:cout * (j + 1)] for j in range(kw)])
    return tf.cast(total, inputs.dtype)


def reference_conv(filters, kernel_size, strides=1, activation=None, name=None,
                   conv_class=BiasAddConv2D):
  """Conv2D with the reference initialisation: truncated normal 0.01, biases 0.01."""
  return conv_class(
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
