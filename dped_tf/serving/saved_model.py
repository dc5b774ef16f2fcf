"""TF Serving SavedModels: version folders holding a tensor signature (`serving_default`) and
an encoded-image signature (`enhance_image`), docs/serving.md."""

import os
import shutil

import tensorflow as tf

from dped_tf.fileio import publish_dir
from dped_tf.serving.served import OutputExists, enhance, float32_copy

IMAGE_FORMATS = ("png", "jpeg")


def serving_module(generator, image_format="png", jpeg_quality=95):
  """A `tf.Module` with `serve_tensor` and `serve_bytes` (the two exported signatures).

  It tracks the plain `tf.Variable`s the functions capture, not the Keras objects (as
  Keras' own `ExportArchive` does), so the SavedModel stores each weight once.
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
