"""Interop: the authors' TF1 checkpoints read onto a `Generator`.

Checkpoint names and layout: docs/method.md §1 ("Released weights"), read off the `Generator`
that holds them. Exports (SavedModel, ONNX, OpenVINO, LiteRT) are in `dped_tf.serving`.
"""

import keras
import numpy as np
import tensorflow as tf

from dped_tf.errors import DpedError
from dped_tf.modeling.generator import Generator


def _first_line(error):
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def _norm_variable(n):
  """The n-th unnamed instance-norm variable: `generator/Variable`, `..._1`, ..."""
  return "generator/Variable" + (f"_{n}" if n else "")


def checkpoint_variables(generator):
  """(name, variable) pairs: a `Generator`'s weights under the released checkpoint's names
  (docs/method.md §1). Conv i holds `W{i}`, `b{i}`; norm k (after W(k+2)) holds shift
  `Variable_{2k}` and scale `Variable_{2k+1}`."""
  pairs = []
  for i, conv in enumerate(generator.conv_layers(), 1):
    pairs += [(f"generator/W{i}", conv.kernel), (f"generator/b{i}", conv.bias)]
  for k, norm in enumerate(generator.norm_layers()):
    pairs += [(_norm_variable(2 * k), norm.shift), (_norm_variable(2 * k + 1), norm.scale)]
  return pairs


def checkpoint_layout(generator):
  """name -> shape of the checkpoint variables that hold `generator`'s weights: for
  `released_generator()`, the 40 of a released checkpoint."""
  return {name: tuple(variable.shape) for name, variable in checkpoint_variables(generator)}


def _listing(items, limit=6):
  shown = ", ".join(items[:limit])
  return shown + (f", ... {len(items) - limit} more" if len(items) > limit else "")


def read_generator_checkpoint(prefix, layout):
  """name -> float32 array of a TF1 generator checkpoint with `layout` (name -> shape);
  DpedError naming what is wrong."""
  try:
    reader = tf.train.load_checkpoint(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise DpedError(f"{prefix}: not a readable TF checkpoint ({_first_line(e)})") from None
  shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
  problems = []
  missing = [name for name in layout if name not in shapes]
  if missing:
    problems.append(f"missing {len(missing)} ({_listing(missing)})")
  wrong = [f"{name} {list(shapes[name])} expected {list(shape)}"
           for name, shape in layout.items() if name in shapes and shapes[name] != shape]
  if wrong:
    problems.append(f"wrong shape ({_listing(wrong)})")
  extra = sorted(set(shapes) - set(layout))
  if extra:
    problems.append(f"{len(extra)} unexpected ({_listing(extra)})")
  if problems:
    raise DpedError(f"{prefix}: not a DPED generator checkpoint (docs/method.md §1): "
                    + "; ".join(problems))
  return {name: reader.get_tensor(name).astype(np.float32) for name in layout}


def released_generator():
  """A built float32 `Generator(norm="instance")`, the network of the released checkpoints,
  whatever the global policy."""
  policy = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy("float32")
  try:
    generator = Generator(norm="instance")
  finally:
    keras.mixed_precision.set_global_policy(policy)
  generator.build((None, None, None, 3))
  return generator


def import_checkpoint(prefix):
  """The authors' generator checkpoint as `released_generator()` with its weights
  (`checkpoint_variables`)."""
  generator = released_generator()
  variables = checkpoint_variables(generator)
  arrays = read_generator_checkpoint(prefix, checkpoint_layout(generator))
  for name, variable in variables:
    variable.assign(arrays[name])
  return generator
