"""dped_tf: DPED (Ignatov et al., ICCV 2017) in TensorFlow 2 / Keras.

`import dped_tf` registers every Keras class the project saves (generators, their
layers, the discriminator, the content network), so that `keras.models.load_model`
reads any `.keras` file it writes. TensorFlow is slow to import and `dped-tf --help`
needs none of it: the classes are registered when Keras executes, not before (at once if
it already has), through `dped_tf.lazy`.
"""

from dped_tf.lazy import import_now
from dped_tf.lazy import lazy_import

__version__ = "0.1.0"


def register_keras_classes():
  """Imports `dped_tf.modeling`, which imports every module whose classes carry
  `register_keras_serializable`. When Keras runs inside that import (its first module
  uses keras), this returns the half-made package, whose import finishes the work."""
  import_now("dped_tf.modeling")


lazy_import("keras", then=register_keras_classes)
