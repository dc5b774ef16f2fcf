"""What every export computes: the generator in float32 on whole images, clipped to [0, 1]
(instance norm over the whole image, docs/method.md §1)."""

import keras
import tensorflow as tf

from dped_tf import precision
from dped_tf.errors import DpedError


class OutputExists(DpedError):
  """An export would replace existing output, and `overwrite` is not set."""


def float32_copy(model):
  """`model` (any generator, under any dtype policy) under the float32 policy."""
  return precision.with_precision(model, "float32")


def enhance(generator, images):
  """The served result: the generator on whole images, clipped to [0, 1]."""
  return tf.clip_by_value(generator(images, training=False), 0.0, 1.0)


def served_model(generator):
  """A called Keras model `images` float32 [batch, height, width, 3] -> `enhanced` (same
  shape, clipped to [0, 1]) around a float32 copy of `generator`: what `model.export`
  writes. The clip is Keras' `ReLU(max_value=1)`, an op every runtime has."""
  images = keras.Input((None, None, 3), name="images", dtype="float32")
  enhanced = keras.layers.ReLU(max_value=1.0, name="enhanced")(float32_copy(generator)(images))
  model = keras.Model(images, enhanced, name="dped_served")
  model(tf.zeros([1, 8, 8, 3]))  # Keras' exporters want a model that has run
  return model
