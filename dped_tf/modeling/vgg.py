"""The frozen VGG-19 `relu5_4` feature extractor of the content loss (docs/method.md §3).

Weight sources: `imagenet` (Keras' own download and cache), a Keras `.h5` weights
file, the authors' MatConvNet `imagenet-vgg-verydeep-19.mat`, or `none` (seeded
random weights, a loudly reported fallback). Preprocessing follows the source:
Keras weights expect BGR minus the BGR mean, MatConvNet weights RGB minus the RGB
mean. Pooling is SAME, as in the released code (100x100 -> 7x7 at relu5_4).
"""

import dataclasses
import os

from absl import logging
import keras
import numpy as np
import scipy.io
import tensorflow as tf

from dped_tf import precision
from dped_tf.errors import DpedError

IMAGENET_RGB_MEAN = (123.68, 116.779, 103.939)
# The 16 conv layers up to relu5_4 in Keras' names; None marks a 2x2 max-pool.
_LAYOUT = (("block1_conv1", 64), ("block1_conv2", 64), None,
           ("block2_conv1", 128), ("block2_conv2", 128), None,
           *((f"block3_conv{i}", 256) for i in range(1, 5)), None,
           *((f"block4_conv{i}", 512) for i in range(1, 5)), None,
           *((f"block5_conv{i}", 512) for i in range(1, 5)))
CONV_NAMES = tuple(entry[0] for entry in _LAYOUT if entry is not None)
# MatConvNet's layer list (conv, relu, pool entries); conv k sits at its index here.
MATCONVNET_LAYERS = (
    "conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1",
    "conv2_1", "relu2_1", "conv2_2", "relu2_2", "pool2",
    "conv3_1", "relu3_1", "conv3_2", "relu3_2", "conv3_3", "relu3_3", "conv3_4", "relu3_4",
    "pool3",
    "conv4_1", "relu4_1", "conv4_2", "relu4_2", "conv4_3", "relu4_3", "conv4_4", "relu4_4",
    "pool4",
    "conv5_1", "relu5_1", "conv5_2", "relu5_2", "conv5_3", "relu5_3", "conv5_4", "relu5_4")
RANDOM_WEIGHTS_WARNING = (
    "VGG-19 content network uses RANDOM weights (--vgg_weights=none): the content loss "
    "is NOT the paper's; results are not comparable with DPED.")


@dataclasses.dataclass(frozen=True)
class VGGSource:
  """Where the weights came from and how inputs must be preprocessed."""
  name: str            # "imagenet", "h5", "matconvnet", "none"; "unused": no content term
  channel_order: str   # "bgr" (Keras weights) or "rgb" (MatConvNet)
  fallback: bool       # True when the weights are not the ImageNet ones

  @property
  def warning(self):
    return RANDOM_WEIGHTS_WARNING if self.fallback else None


@keras.saving.register_keras_serializable(package="dped_tf")
class ContentNetwork(keras.Model):
  """Images in [0, 1] -> float32 relu5_4 features; frozen, float32 weights.

  `compute_dtype` "float32" (default) whatever the global policy; "bfloat16" runs the
  convolutions in bfloat16 (about half the cost of a bf16 training iteration on CPU;
  not the reference numerics, an opt-in).
  """

  def __init__(self, channel_order="bgr", seed=0, compute_dtype="float32", **kwargs):
    kwargs.setdefault("name", "vgg19_relu5_4")
    if compute_dtype not in ("float32", "bfloat16"):
      raise ValueError(f"VGG compute dtype must be float32 or bfloat16, got {compute_dtype!r}")
    policy = precision.POLICY_OF[compute_dtype]
    super().__init__(dtype=policy, **kwargs)
    self.channel_order = channel_order
    self.compute_dtype_name = compute_dtype
    init = keras.initializers.GlorotUniform(seed=seed)
    self.stack = []
    for entry in _LAYOUT:
      if entry is None:
        self.stack.append(keras.layers.MaxPooling2D(2, padding="same", dtype=policy))
      else:
        name, filters = entry
        self.stack.append(keras.layers.Conv2D(
            filters, 3, padding="same", activation="relu", kernel_initializer=init,
            name=name, dtype=policy))
    self.trainable = False

  def build(self, input_shape):
    shape = tuple(input_shape)
    for layer in self.stack:
      if not layer.built:
        layer.build(shape)
      shape = layer.compute_output_shape(shape)
    self.built = True

  def preprocess(self, images):
    x = tf.cast(images, tf.float32) * 255.0 - tf.constant(IMAGENET_RGB_MEAN)
    return x[..., ::-1] if self.channel_order == "bgr" else x

  def call(self, images):
    x = self.preprocess(images)
    for layer in self.stack:
      x = layer(x)
    return tf.cast(x, tf.float32)

  def conv_layers(self):
    return [layer for layer in self.stack if isinstance(layer, keras.layers.Conv2D)]

  def set_conv_weights(self, weights):
    """`weights`: 16 (kernel HWIO, bias) pairs in layer order."""
    self.build((None, None, None, 3))
    for layer, (kernel, bias) in zip(self.conv_layers(), weights, strict=True):
      layer.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32).ravel()])

  def get_config(self):
    return {"name": self.name, "channel_order": self.channel_order,
            "compute_dtype": self.compute_dtype_name}


def _keras_vgg19_weights(weights):
  """Conv weights of `keras.applications.VGG19` loaded from `weights`."""
  model = keras.applications.VGG19(include_top=False, weights=weights,
                                   input_shape=(None, None, 3))
  return [model.get_layer(name).get_weights() for name in CONV_NAMES]


def matconvnet_weights(path):
  """The 16 conv (kernel HWIO, bias) pairs of `imagenet-vgg-verydeep-19.mat`."""
  try:
    layers = scipy.io.loadmat(path)["layers"][0]
  except Exception as e:  # scipy raises many kinds for a bad file
    raise DpedError(f"{path}: not a MatConvNet VGG-19 .mat file ({e})") from None
  weights = []
  for i, name in enumerate(MATCONVNET_LAYERS):
    if name.startswith("conv"):
      kernel, bias = layers[i][0][0][0][0]
      # MatConvNet stores [W, H, in, out]; TF wants [H, W, in, out].
      weights.append((np.transpose(kernel, (1, 0, 2, 3)), np.reshape(bias, -1)))
  return weights


def load_content_network(source="imagenet", seed=0, compute_dtype="float32"):
  """Builds the frozen relu5_4 network from `source`; returns (network, VGGSource).

  `source`: "imagenet", "none", or a path to a `.h5` or `.mat` file.
  """
  if source == "none":
    logging.warning(RANDOM_WEIGHTS_WARNING)
    net = ContentNetwork("bgr", seed=seed, compute_dtype=compute_dtype)
    net.build((None, None, None, 3))
    return net, VGGSource("none", "bgr", fallback=True)
  if source == "imagenet":
    try:
      weights = _keras_vgg19_weights("imagenet")
    except Exception as e:  # Keras reports a failed download as a bare Exception
      raise DpedError(
          f"could not get the ImageNet VGG-19 weights ({str(e).splitlines()[0]}); pass a "
          "local file with --vgg_weights=/path/imagenet-vgg-verydeep-19.mat or "
          "--vgg_weights=/path/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5, or "
          "--vgg_weights none to train with a RANDOM VGG-19 (the content term is then not "
          "the paper's: results not comparable with DPED), or a preset without the "
          "content term (--preset cpu_sample or demo), which needs no VGG-19") from None
    info = VGGSource("imagenet", "bgr", fallback=False)
  elif not os.path.isfile(source):
    raise DpedError(f"{source}: VGG-19 weights file not found "
                    "(expected 'imagenet', 'none', a .h5 or a .mat file)")
  elif source.endswith(".mat"):
    weights = matconvnet_weights(source)
    info = VGGSource("matconvnet", "rgb", fallback=False)
  elif source.endswith(".h5"):
    try:
      weights = _keras_vgg19_weights(source)
    except Exception as e:  # h5py and Keras raise many kinds for a bad file
      raise DpedError(f"{source}: not a Keras VGG-19 weights file ({e})") from None
    info = VGGSource("h5", "bgr", fallback=False)
  else:
    raise DpedError(f"{source}: unknown VGG-19 weights format (want .h5 or .mat)")
  net = ContentNetwork(info.channel_order, compute_dtype=compute_dtype)
  net.set_conv_weights(weights)
  return net, info
