"""The texture critic (docs/method.md §2; paper Fig. 5)."""

import keras
import tensorflow as tf

from dped_tf.modeling.layers import InstanceNorm, reference_conv

# (filters, kernel, stride, instance norm) of the five convolutions, docs/method.md §2.
_CONVS = ((48, 11, 4, False), (128, 5, 2, True), (192, 3, 1, True), (192, 3, 1, True),
          (128, 3, 2, True))


@keras.saving.register_keras_serializable(package="dped_tf")
class Discriminator(keras.Model):
  """Grayscale patch -> softmax [P(DSLR), P(enhanced)] (float32).

  The flatten size follows the input: 128 x 7 x 7 for 100x100 patches.
  """

  def __init__(self, **kwargs):
    kwargs.setdefault("name", "discriminator")
    super().__init__(**kwargs)
    self.convs = [reference_conv(f, k, s, name=f"conv{i + 1}")
                  for i, (f, k, s, _) in enumerate(_CONVS)]
    self.norms = [InstanceNorm(name=f"norm{i + 1}") if n else None
                  for i, (_, _, _, n) in enumerate(_CONVS)]
    dense = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.01),
                 bias_initializer=keras.initializers.Constant(0.01))
    self.flatten = keras.layers.Flatten()
    self.fc = keras.layers.Dense(1024, name="fc", **dense)
    self.out = keras.layers.Dense(2, name="out", **dense)

  def build(self, input_shape):
    """Needs the patch size: the dense layer's input is the flattened last feature map."""
    shape = tuple(input_shape)
    for conv, norm in zip(self.convs, self.norms):
      conv.build(shape)
      shape = conv.compute_output_shape(shape)
      if norm is not None:
        norm.build(shape)
    self.fc.build((shape[0], shape[1] * shape[2] * shape[3]))
    self.out.build((shape[0], 1024))

  def call(self, gray_images, training=False):
    x = gray_images
    for conv, norm in zip(self.convs, self.norms):
      x = tf.nn.leaky_relu(conv(x), alpha=0.2)
      if norm is not None:
        x = norm(x)
    x = tf.nn.leaky_relu(self.fc(self.flatten(x)), alpha=0.2)
    return tf.nn.softmax(tf.cast(self.out(x), tf.float32))

  def get_config(self):
    return {"name": self.name}
