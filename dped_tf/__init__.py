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


def _dped_tf_import_running():
  """True while a dped_tf module is being imported (its classes may not exist yet)."""
  return any(getattr(getattr(module, "__spec__", None), "_initializing", False)
             for name, module in list(sys.modules.items())
             if name == "dped_tf" or name.startswith("dped_tf."))


class _AfterKerasImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
  """Registers the classes once `keras` has been imported: at once, or, when a dped_tf
  module imported it (so that module is half made), at the first import after that."""

  def __init__(self):
    self.pending = False
    self.keras_loader = None

  def find_spec(self, fullname, path=None, target=None):
    if self.pending:
      self._register_when_safe()
      return None
    if fullname != "keras":
      return None
    sys.meta_path.remove(self)
    try:
      spec = importlib.util.find_spec(fullname)
    finally:
      sys.meta_path.insert(0, self)
    if spec is None or spec.loader is None:
      return spec
    self.keras_loader, spec.loader = spec.loader, self
    return spec

  def create_module(self, spec):
    return self.keras_loader.create_module(spec)

  def exec_module(self, module):
    self.keras_loader.exec_module(module)
    self.pending = True
    self._register_when_safe()

  def _register_when_safe(self):
    if _dped_tf_import_running():
      return
    self.pending = False
    if self in sys.meta_path:
      sys.meta_path.remove(self)
    register_keras_classes()


if "keras" in sys.modules:
  register_keras_classes()
elif not any(isinstance(f, _AfterKerasImport) for f in sys.meta_path):
  sys.meta_path.insert(0, _AfterKerasImport())
