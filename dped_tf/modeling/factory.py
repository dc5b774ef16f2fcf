"""Making and loading every generator the project trains (docs/method.md §1, 6).

The kinds are named in `dped_tf.configs.ARCHITECTURES` (light, read by `--help`); here they map
to their classes: `dped` and `johnson` are a `Generator` (instance or batch norm), `srcnn`
an `SRCNN`.
"""

import os
import zipfile

import keras

from dped_tf.errors import DpedError
from dped_tf.modeling import released
from dped_tf.modeling.baselines import SRCNN
from dped_tf.modeling.generator import Generator

KINDS = {"dped": Generator, "srcnn": SRCNN, "johnson": Generator}
GENERATOR_CLASSES = (Generator, SRCNN)


def make_generator(kind="dped", norm="instance"):
  """The network `dped-tf train --architecture` trains, unbuilt; `norm` applies to a `Generator`."""
  if kind not in KINDS:
    raise ValueError(f"unknown model {kind!r} (choose from {', '.join(KINDS)})")
  return Generator(norm=norm) if KINDS[kind] is Generator else SRCNN()


def load_generator(path, kinds=None):
  """Any generator the project writes (`dped-tf train --architecture dped|johnson|srcnn`,
  `import-checkpoint`, the demo), saved as `.keras`, or a released one by name
  (`dped:iphone|blackberry|sony`: `released.keras_file`, downloaded on first use).
  `kinds`: the model classes accepted (default: `GENERATOR_CLASSES`)."""
  if released.is_name(path):
    name, path = path, released.keras_file(path)
    try:
      model = _read_keras(path)
    except DpedError:  # a cached .keras this Keras cannot read: import the checkpoint again
      os.remove(path)
      model = _read_keras(released.keras_file(name))
  else:
    model = _read_keras(path)
  kinds = kinds or GENERATOR_CLASSES
  if not isinstance(model, kinds):
    wanted = " or ".join(k.__name__ for k in kinds)
    raise DpedError(f"{path}: holds a {type(model).__name__}, not a dped_tf {wanted}")
  return model


def _read_keras(path):
  if not os.path.isfile(path):
    raise DpedError(f"{path}: model file not found")
  if not zipfile.is_zipfile(path):  # Keras would say "file not found"
    raise DpedError(f"{path}: not a .keras model archive (empty, truncated or another "
                    "format)")
  try:
    return keras.models.load_model(path, compile=False)
  except Exception as e:  # Keras raises many kinds for a bad archive
    raise DpedError(f"{path}: not a loadable .keras model ({str(e).splitlines()[0]})") from None


def describe(generator):
  """What a generator is, for messages; equal for two generators whose weights fit each
  other: "a DPED generator with batch norm", "an SRCNN (middle kernel 1)"."""
  if isinstance(generator, Generator):
    return f"a DPED generator with {generator.norm} norm"
  return f"an SRCNN (middle kernel {generator.middle_kernel})"
