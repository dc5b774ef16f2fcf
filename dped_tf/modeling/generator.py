"""The image transformation network (docs/method.md §1; paper Fig. 5)."""

import keras
import tensorflow as tf

from dped_tf.modeling import tiling
from dped_tf.modeling.layers import InstanceNorm
from dped_tf.modeling.layers import ShiftedSumConv2D
from dped_tf.modeling.layers import make_norm
from dped_tf.modeling.layers import reference_conv

CHANNELS = 64  # of every map between conv1 and conv12 (docs/method.md §1)


@keras.saving.register_keras_serializable(package="dped_tf")
class ResidualBlock(keras.layers.Layer):
  """conv3x3 -> norm -> ReLU -> conv3x3 -> norm -> ReLU, then + input. The generator
  runs its layers stage by stage (`Generator.segments`); this layer holds them under the
  checkpoint's names."""

  def __init__(self, norm="instance", **kwargs):
    super().__init__(**kwargs)
    self.norm = norm
    self.conv_a = reference_conv(CHANNELS, 3, name="conv_a")
    self.norm_a = make_norm(norm, "norm_a")
    self.conv_b = reference_conv(CHANNELS, 3, name="conv_b")
    self.norm_b = make_norm(norm, "norm_b")

  def build(self, input_shape):
    for layer in (self.conv_a, self.norm_a, self.conv_b, self.norm_b):
      layer.build(input_shape)

  def get_config(self):
    return {**super().get_config(), "norm": self.norm}


def _normalise(norm, x, stats, training):
  """ReLU(norm(x)): an instance norm with given or its own statistics, or a batch norm."""
  if isinstance(norm, InstanceNorm):
    return tf.nn.relu(norm(x, stats=stats))
  return tf.nn.relu(norm(x, training=training))


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
    self.conv1 = reference_conv(CHANNELS, 9, activation="relu", name="conv1")
    self.blocks = [ResidualBlock(norm, name=f"block{i}") for i in range(4)]
    self.conv10 = reference_conv(CHANNELS, 3, activation="relu", name="conv10")
    self.conv11 = reference_conv(CHANNELS, 3, activation="relu", name="conv11")
    self.conv12 = reference_conv(3, 9, name="conv12", conv_class=ShiftedSumConv2D)

  def build(self, input_shape):
    self.conv1.build(input_shape)
    shape = (*input_shape[:3], self.conv1.filters)
    for layer in (*self.blocks, self.conv10, self.conv11):
      layer.build(shape)
    self.conv12.build(shape)

  def call(self, images, training=False):
    return tiling.run_whole(self.tiling_stages(), images, training)

  def segments(self):
    """The forward pass cut before each of the 8 norms: 9 `tiling.Stage`s. Each block
    is conv_a | norm_a, ReLU, conv_b | norm_b, ReLU, + input, next conv_a | ..."""
    norms = self.norm_layers()
    convs = self.conv_layers()[1:9]  # the blocks' conv_a, conv_b
    tail_convs = (self.conv10, self.conv11, self.conv12)

    def head(maps, stats, training):
      x = self.conv1(maps["image"])
      return {"skip": x, "pre": convs[0](x)}

    def inner(k):  # norm k - 1, then conv k (inside a block)
      def fn(maps, stats, training):
        y = _normalise(norms[k - 1], maps["pre"], stats, training)
        return {"pre": convs[k](y)}
      return fn

    def block_end(k):  # norm k - 1 closes a block: + its input, then the next block's conv_a
      def fn(maps, stats, training):
        x = maps["skip"] + _normalise(norms[k - 1], maps["pre"], stats, training)
        return {"skip": x, "pre": convs[k](x)}
      return fn

    def tail(maps, stats, training):
      x = maps["skip"] + _normalise(norms[7], maps["pre"], stats, training)
      for conv in tail_convs:
        x = conv(x)
      return {"rgb": tf.tanh(tf.cast(x, tf.float32)) * 0.58 + 0.5}

    def stats_of(k):
      return norms[k - 1] if isinstance(norms[k - 1], InstanceNorm) else None

    skip = ("skip", self.conv1.filters)
    stages = [tiling.Stage(head, ("image",), (skip, ("pre", convs[0].filters)),
                           tiling.halo(self.conv1, convs[0]))]
    for k in range(1, 8):
      pre = ("pre", convs[k].filters)
      if k % 2:
        stages.append(tiling.Stage(inner(k), ("pre",), (pre,), tiling.halo(convs[k]),
                                   stats_of(k), "pre"))
      else:
        stages.append(tiling.Stage(block_end(k), ("pre", "skip"), (skip, pre),
                                   tiling.halo(convs[k]), stats_of(k), "pre"))
    stages.append(tiling.Stage(tail, ("pre", "skip"), (("rgb", self.conv12.filters),),
                               tiling.halo(*tail_convs), stats_of(8), "pre"))
    return stages

  def tiling_stages(self):
    """`segments` joined where no whole-image statistics are needed: 9 stages with
    instance norm, 1 with batch norm."""
    return tiling.cut_at_statistics(self.segments())

  def conv_layers(self):
    """The 12 convolutions in checkpoint order W1..W12."""
    inner = [conv for b in self.blocks for conv in (b.conv_a, b.conv_b)]
    return [self.conv1, *inner, self.conv10, self.conv11, self.conv12]

  def norm_layers(self):
    """The 8 normalisation layers in checkpoint order."""
    return [norm for b in self.blocks for norm in (b.norm_a, b.norm_b)]

  def get_config(self):
    return {"name": self.name, "norm": self.norm}
