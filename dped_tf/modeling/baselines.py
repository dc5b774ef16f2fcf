"""The paper's baselines (docs/method.md §6), as generators the DPED trainer can train
(`dped_tf.modeling.factory` makes each kind).

- `srcnn`: Dong et al. (SRCNN): conv 9x9 -> 64, ReLU; conv 1x1 -> 32, ReLU; conv 5x5 -> 3,
  trained with the plain pixel MSE (`LOSS_PRESETS["srcnn"]`). Input and output are RGB in
  [0, 1], same size (no upscaling: here it maps phone photos to DSLR ones).
- `johnson`: Johnson et al.: the residual network of the DPED generator (docs/method.md §1),
  trained with the VGG-19 content loss only (`LOSS_PRESETS["johnson"]`).
- `dped`: the DPED generator under the composite loss.
"""

import keras
import tensorflow as tf

from dped_tf.modeling import tiling


@keras.saving.register_keras_serializable(package="dped_tf")
class SRCNN(keras.Model):
  """Dong et al.'s three-layer network; `middle_kernel` 1 (SRCNN 9-1-5) or 5 (9-5-5).

  Output is float32 under any mixed-precision policy and not squashed: the metrics clip
  it to [0, 1], as for every model.
  """

  def __init__(self, middle_kernel=1, **kwargs):
    kwargs.setdefault("name", "srcnn")
    super().__init__(**kwargs)
    self.middle_kernel = middle_kernel
    init = keras.initializers.HeNormal(seed=0)
    self.conv1 = keras.layers.Conv2D(64, 9, padding="same", activation="relu",
                                     kernel_initializer=init, name="conv1")
    self.conv2 = keras.layers.Conv2D(32, middle_kernel, padding="same", activation="relu",
                                     kernel_initializer=init, name="conv2")
    self.conv3 = keras.layers.Conv2D(3, 5, padding="same", name="conv3",
                                     kernel_initializer=keras.initializers.HeNormal(seed=1))

  def build(self, input_shape):
    self.conv1.build(input_shape)
    self.conv2.build((*input_shape[:3], self.conv1.filters))
    self.conv3.build((*input_shape[:3], self.conv2.filters))

  def call(self, images, training=False):
    return tiling.run_whole(self.tiling_stages(), images, training)

  def tiling_stages(self):
    """One stage (no normalisation): a tile needs a halo of the three kernels' radii."""
    convs = (self.conv1, self.conv2, self.conv3)

    def forward(maps, stats, training):
      x = maps["image"]
      for conv in convs:
        x = conv(x)
      return {"rgb": tf.cast(x, tf.float32)}

    return [tiling.Stage(forward, ("image",), (("rgb", self.conv3.filters),),
                         tiling.halo(*convs))]

  def get_config(self):
    return {"name": self.name, "middle_kernel": self.middle_kernel}
