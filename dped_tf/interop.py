"""Interop: the authors' TF1 checkpoints in, TF Serving SavedModels and TFLite out.

Checkpoint names and layout: docs/method.md §1 ("Released weights"), read off the `Generator`
that holds them. Exports take any generator the project writes (DPED, SRCNN), are float32
and run it on the whole image (instance norm over the whole image, docs/method.md §1).
"""

import os
import shutil
import tempfile

import keras
import numpy as np
import tensorflow as tf

from dped_tf import precision
from dped_tf.errors import DpedError
from dped_tf.fileio import atomic_write_bytes, publish_dir
from dped_tf.modeling.generator import Generator

IMAGE_FORMATS = ("png", "jpeg")
TFLITE_FILES = {"float32": "generator_float32.tflite", "float16": "generator_float16.tflite"}


class OutputExists(DpedError):
  """An export would replace existing output, and `overwrite` is not set."""


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


def float32_copy(model):
  """`model` (any generator, under any dtype policy) under the float32 policy."""
  return precision.with_precision(model, "float32")


def enhance(generator, images):
  """The served result: the generator on whole images, clipped to [0, 1]."""
  return tf.clip_by_value(generator(images, training=False), 0.0, 1.0)


def serving_module(generator, image_format="png", jpeg_quality=95):
  """A `tf.Module` with `serve_tensor` and `serve_bytes` (the two exported signatures).

  It tracks the plain `tf.Variable`s the functions capture, not the Keras objects (as
  Keras' own `ExportArchive` does): the SavedModel then stores each weight once and the
  TFLite converter can freeze them.
  """
  if image_format not in IMAGE_FORMATS:
    raise ValueError(f"image_format must be one of {IMAGE_FORMATS}, got {image_format!r}")

  @tf.function(input_signature=[
      tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
  def serve_tensor(images):
    """float32 [batch, height, width, 3] in [0, 1] -> {"enhanced": same shape, in [0, 1]}."""
    return {"enhanced": enhance(generator, images)}

  def enhance_one(data):
    image = tf.io.decode_image(data, channels=3, dtype=tf.float32, expand_animations=False)
    pixels = tf.cast(tf.round(enhance(generator, image[None])[0] * 255.0), tf.uint8)
    if image_format == "png":
      return tf.io.encode_png(pixels)
    return tf.io.encode_jpeg(pixels, quality=jpeg_quality, chroma_downsampling=False)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
  def serve_bytes(image_bytes):
    """Encoded JPEG/PNG images, one per row, each of its own size -> {"enhanced_bytes"}."""
    return {"enhanced_bytes": tf.map_fn(
        enhance_one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))}

  module = tf.Module(name="dped")
  module.serve_tensor = serve_tensor
  module.serve_bytes = serve_bytes
  captured = {}
  for fn in (serve_tensor, serve_bytes):
    captured.update((id(v), v) for v in fn.get_concrete_function().variables)
  module.generator_variables = list(captured.values())
  return module


def next_version(export_dir):
  """One more than the highest numeric version folder in `export_dir` (1 if none)."""
  if not os.path.isdir(export_dir):
    return 1
  return max((int(n) for n in os.listdir(export_dir) if n.isdigit()), default=0) + 1


def _dir_size(path):
  return sum(os.path.getsize(os.path.join(root, f))
             for root, _, files in os.walk(path) for f in files)


def export_saved_model(generator, export_dir, version, overwrite=False, image_format="png",
                       jpeg_quality=95):
  """Writes `export_dir/<version>/` for TF Serving; returns (path, size in bytes).

  Written into a hidden sibling folder, then renamed (TF Serving ignores non-numeric
  folders); an existing version is replaced only with `overwrite`.
  """
  target = os.path.join(export_dir, str(version))
  if os.path.exists(target) and not overwrite:
    raise OutputExists(f"{target}: export version exists")
  os.makedirs(export_dir, exist_ok=True)
  tmp = os.path.join(export_dir, f".tmp-{os.getpid()}-{version}")
  shutil.rmtree(tmp, ignore_errors=True)
  module = serving_module(float32_copy(generator), image_format, jpeg_quality)
  try:
    tf.saved_model.save(module, tmp, signatures={
        "serving_default": module.serve_tensor.get_concrete_function(),
        "enhance_image": module.serve_bytes.get_concrete_function()})
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  publish_dir(tmp, target)
  return target, _dir_size(target)


def tflite_models(generator):
  """{"float32": bytes, "float16": bytes}: the tensor signature as TFLite flatbuffers.

  Input `[batch, height, width, 3]` with every dimension but the channels dynamic
  (`Interpreter.resize_tensor_input` before `allocate_tensors`); float16 stores the
  weights in half precision.
  """
  module = serving_module(float32_copy(generator))
  models = {}
  with tempfile.TemporaryDirectory() as tmp:
    tf.saved_model.save(module, tmp, signatures=module.serve_tensor.get_concrete_function())
    for kind in TFLITE_FILES:
      converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
      if kind == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
      models[kind] = converter.convert()
  return models


def export_tflite(generator, out_dir, overwrite=False):
  """Writes the TFLite files into `out_dir`; returns {kind: (path, size in bytes)}."""
  paths = {kind: os.path.join(out_dir, name) for kind, name in TFLITE_FILES.items()}
  existing = [p for p in paths.values() if os.path.exists(p)]
  if existing and not overwrite:
    raise OutputExists(f"{existing[0]}: exists")
  models = tflite_models(generator)
  os.makedirs(out_dir, exist_ok=True)
  for kind, path in paths.items():
    atomic_write_bytes(path, models[kind])
  return {kind: (path, len(models[kind])) for kind, path in paths.items()}
