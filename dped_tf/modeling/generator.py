"""The image transformation network (docs/method.md §1; paper Fig. 5)."""

import os
import zipfile

import keras
import tensorflow as tf

from dped_tf.errors import DpedError
from dped_tf.modeling.layers import make_norm, reference_conv


@keras.saving.register_keras_serializable(package="dped_tf")
class ResidualBlock(keras.layers.Layer):
  """conv3x3 -> norm -> ReLU -> conv3x3 -> norm -> ReLU, then + input."""

  def __init__(self, norm="instance", **kwargs):
    super().__init__(**kwargs)
    self.norm = norm
    self.conv_a = reference_conv(64, 3, name="conv_a")
    self.norm_a = make_norm(norm, "norm_a")
    self.conv_b = reference_conv(64, 3, name="conv_b")
    self.norm_b = make_norm(norm, "norm_b")

  def build(self, input_shape):
    for layer in (self.conv_a, self.norm_a, self.conv_b, self.norm_b):
      layer.build(input_shape)

  def call(self, x, training=False):
    y = tf.nn.relu(self.norm_a(self.conv_a(x), training=training))
    y = tf.nn.relu(self.norm_b(self.conv_b(y), training=training))
    return x + y

  def get_config(self):
    return {**super().get_config(), "norm": self.norm}


@keras.saving.register_keras_serializable(package="dped_tf")
class Generator(keras.Model):
  """DPED residual enhancer: RGB in [0, 1] of any size -> RGB in 0.5 +- 0.58.

  Layers in the order of the released checkpoints: `conv1` (W1), `block0..block3`
  (W2..W9 with their norms), `conv10`, `conv11`, `conv12` (W12). The output is
  float32 under any mixed-precision policy.
  """

  def __init__(self, norm="instance", **kwargs):
    kwargs.setdefault("name", "generator")
    super().__init__(**kwargs)
    self.norm = norm
    self.conv1 = reference_conv(64, 9, activation="relu", name="conv1")
    self.blocks = [ResidualBlock(norm, name=f"block{i}") for i in range(4)]
    self.conv10 = reference_conv(64, 3, activation="relu", name="conv10")
    self.conv11 = reference_conv(64, 3, activation="relu", name="conv11")
    self.conv12 = reference_conv(3, 9, name="conv12")

  def build(self, input_shape):
    self.conv1.build(input_shape)
    shape = (*input_shape[:3], 64)
    for layer in (*self.blocks, self.conv10, self.conv11):
      layer.build(shape)
    self.conv12.build(shape)

  def call(self, images, training=False):
    x = self.conv1(images)
    for block in self.blocks:
      x = block(x, training=training)
    x = self.conv12(self.conv11(self.conv10(x)))
    return tf.tanh(tf.cast(x, tf.float32)) * 0.58 + 0.5

  def conv_layers(self):
    """The 12 convolutions in checkpoint order W1..W12."""
    inner = [conv for b in self.blocks for conv in (b.conv_a, b.conv_b)]
    return [self.conv1, *inner, self.conv10, self.conv11, self.conv12]

  def norm_layers(self):
    """The 8 normalisation layers in checkpoint order."""
    return [norm for b in self.blocks for norm in (b.norm_a, b.norm_b)]

  def get_config(self):
    return {"name": self.name, "norm": self.norm}


def load_generator(path, kinds=None):
  """A `Generator` saved as `.keras` (by `dped-tf train` or `import-checkpoint`);
  `kinds`: the model classes accepted (default: `Generator` only)."""
  if not os.path.isfile(path):
    raise DpedError(f"{path}: model file not found")
  if not zipfile.is_zipfile(path):  # Keras would say "file not found"
    raise DpedError(f"{path}: not a .keras model archive (empty, truncated or another "
                    "format)")
  try:
    model = keras.models.load_model(path, compile=False)
  except Exception as e:  # Keras raises many kinds for a bad archive
    raise DpedError(f"{path}: not a loadable .keras model ({str(e).splitlines()[0]})") from None
  kinds = kinds or (Generator,)
  if not isinstance(model, kinds):
    wanted = " or ".join(k.__name__ for k in kinds)
    raise DpedError(f"{path}: holds a {type(model).__name__}, not a dped_tf {wanted}")
  return model
