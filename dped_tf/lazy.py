"""The one way a module defers a heavy import: `tf = lazy_import("tensorflow")` at the top.

TensorFlow and Keras take seconds to import and `dped-tf --help` needs neither: a module on
a light path (the CLI, the commands, the file readers) names its heavy modules with
`lazy_import`, and each one's code runs on the first access to one of its attributes.

Unlike `importlib.util.LazyLoader`'s modules, these do not run when the import system
reads their metadata (`__spec__`, `__name__`, `__file__`): TensorFlow calls
`importlib.util.find_spec("keras")`, which reads `__spec__`, halfway through its own
import, where Keras cannot be imported yet. So an `import NAME` statement returns a lazy
module as it is (`import_now` runs it: for an import made for its side effects), and a
dotted name's parent packages stay lazy too (they run, first, when the module does).

Caveats:
- A lazy module sits in `sys.modules` from the call on, and code that probes `sys.modules`
  and touches what it finds runs it: matplotlib looks for "tensorflow" there before it
  plots, so a module that may run without TensorFlow (a chart, the study) does not lazily
  import it. `is_loaded` tells a lazy module that has not run yet without running it.
- `then` runs inside whatever first touched the module, possibly while the modules being
  imported at that moment are half made.
"""

import importlib.machinery
import importlib.util
import sys
import threading
import types

# Attributes that do not run a lazy module: what the import system reads to find one
# (`__path__` runs it: a package runs before its modules).
_METADATA = frozenset(("__spec__", "__name__", "__loader__", "__package__", "__file__",
                       "__cached__", "__class__"))
_WAITING = {}  # name -> callbacks to call once the lazy module `name` has run
_RUNNING = set()  # names of the lazy modules whose code is running
_LOCK = threading.RLock()  # one thread runs a module while the others wait for it


class _LazyModule(types.ModuleType):
  """A module whose code runs on the first access to an attribute that is not metadata."""

  def __getattribute__(self, attr):
    if attr not in _METADATA and type(self) is _LazyModule:
      with _LOCK:
        if type(self) is _LazyModule and self.__spec__.name not in _RUNNING:
          _run(self)
    return types.ModuleType.__getattribute__(self, attr)


def _run(module):
  """Runs the module's package if it is lazy, then its code, then its callbacks."""
  name = module.__spec__.name
  package = sys.modules.get(name.rpartition(".")[0])
  if type(package) is _LazyModule and package.__spec__.name not in _RUNNING:
    _run(package)
    if type(module) is not _LazyModule:  # the package's code ran it
      return
  _RUNNING.add(name)
  try:
    module.__spec__.loader.exec_module(module)
  except BaseException:
    del _WAITING[name]
    sys.modules.pop(name, None)  # as after a failed import: the next `import` retries
    raise
  finally:
    _RUNNING.discard(name)
    module.__class__ = types.ModuleType
  for then in _WAITING.pop(name):
    then()


def _lazy_module(name):
  """Puts a lazy module for `name` in `sys.modules` (its package's too, if missing)."""
  package_name, _, child = name.rpartition(".")
  package = lazy_import(package_name) if package_name else None
  if type(package) is _LazyModule:  # find the module without running the package
    path = package.__spec__.submodule_search_locations
    spec = importlib.machinery.PathFinder.find_spec(name, path) if path else None
  else:
    spec = importlib.util.find_spec(name)
  if spec is None:
    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
  module = importlib.util.module_from_spec(spec)
  module.__class__ = _LazyModule
  _WAITING[name] = []
  sys.modules[name] = module
  if package_name:
    setattr(package, child, module)
  return module


def lazy_import(name, then=None):
  """The module `name`, run on the first access to one of its attributes; a module already
  in `sys.modules` (lazy or not) as it is. `then()`, when given, is called once right after
  the module has run, or at once if it already has. Raises ModuleNotFoundError, as
  `import` does, when there is no such module."""
  with _LOCK:
    module = sys.modules.get(name)
    if module is None:
      module = _lazy_module(name)
    if name in _WAITING and then is not None:
      _WAITING[name].append(then)
      return module
  if then is not None:
    then()
  return module


def import_now(name):
  """`importlib.import_module(name)`, run at once if it is lazy (and not running)."""
  module = importlib.import_module(name)
  with _LOCK:
    if type(module) is _LazyModule and name not in _RUNNING:
      _run(module)
  return module


def is_loaded(name):
  """True when the module `name` has been imported and is no lazy module waiting to run."""
  return name in sys.modules and name not in _WAITING
