"""dped_tf: DPED (Ignatov et al., ICCV 2017) in TensorFlow 2 / Keras.

`import dped_tf` registers every Keras class the project saves (generators, their
layers, the discriminator, the content network), so that `keras.models.load_model`
reads any `.keras` file it writes. TensorFlow is slow to import and `dped-tf --help`
needs none of it: the classes are registered when Keras is imported, not before (at
once if it already is).
"""

import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

SERIALIZABLE_MODULES = ("dped_tf.modeling.layers", "dped_tf.modeling.generator",
                        "dped_tf.modeling.baselines", "dped_tf.modeling.discriminator",
                        "dped_tf.modeling.vgg")


def register_keras_classes():
  """Imports the modules whose classes carry `register_keras_serializable`."""
  for name in SERIALIZABLE_MODULES:
    importlib.import_module(name)


class _AfterKerasImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Finds `keras` through the other finders and registers the classes once it ran."""

  def find_spec(self, fullname, path=None, target=None):
    if fullname != "keras":
      return None
    sys.meta_path.remove(self)
    spec = importlib.util.find_spec(fullname)
    if spec is None or spec.loader is None:
      return spec
    self._loader = spec.loader  # pylint: disable=attribute-defined-outside-init
    spec.loader = self
    return spec

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    self._loader.exec_module(module)
    register_keras_classes()


if "keras" in sys.modules:
  register_keras_classes()
elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
  sys.meta_path.insert(0, _AfterKerasImport())
