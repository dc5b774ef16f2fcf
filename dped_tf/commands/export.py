"""`dped-tf export`: a generator as a TF Serving SavedModel or TFLite files (docs/serving.md)."""

import os

from absl import flags
from absl import logging

from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

interop = lazy_import("dped_tf.interop")
factory = lazy_import("dped_tf.modeling.factory")


def define_flags(fv):
  flags.DEFINE_string("model", None, "Generator: a .keras file (dped, johnson or srcnn, from "
                      "train or import-checkpoint) or dped:iphone|blackberry|sony (the "
                      "authors' released model, downloaded once into Keras' cache).",
                      flag_values=fv)
  flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"],
                    "saved_model: OUT/<version>/ for TF Serving; tflite: "
                    "OUT/generator_float32.tflite and OUT/generator_float16.tflite.",
                    flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder.", flag_values=fv)
  flags.DEFINE_integer("version", None, "SavedModel version folder (default: one above the "
                       "highest in OUT, else 1).", lower_bound=1, flag_values=fv)
  flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "What the `enhance_image` "
                    "signature returns.", flag_values=fv)
  flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of `enhance_image` output.",
                       lower_bound=1, upper_bound=100, flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing version folder / .tflite files.",
                    flag_values=fv)
  flags.mark_flag_as_required("model", flag_values=fv)
  flags.mark_flag_as_required("out", flag_values=fv)


def _mb(size):
  return f"{size / 1e6:.2f} MB"


def main(fv, argv):
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if fv.format == "tflite" and fv.version is not None:
    raise DpedError("--version applies to --format saved_model only")
  logging.set_verbosity(logging.WARNING)  # TF's per-function notes while saving
  if fv.format == "saved_model":
    version = fv.version or interop.next_version(fv.out)
    target = os.path.realpath(os.path.join(fv.out, str(version)))
    if os.path.realpath(fv.model).startswith(target + os.sep):
      raise DpedError(f"{fv.model}: the model lies inside the export folder {target}")
    generator = factory.load_generator(fv.model)
    try:
      path, size = interop.export_saved_model(generator, fv.out, version, fv.overwrite,
                                              fv.image_format, fv.jpeg_quality)
    except interop.OutputExists as e:
      raise DpedError(f"{e} (pass --overwrite or another --version)") from None
    print(f"SavedModel version {version}: {path} ({_mb(size)}), signatures serving_default "
          f"(images float32 [batch, height, width, 3] -> enhanced), enhance_image "
          f"(image_bytes string [n] -> enhanced_bytes {fv.image_format})")
  else:
    generator = factory.load_generator(fv.model)
    try:
      written = interop.export_tflite(generator, fv.out, fv.overwrite)
    except interop.OutputExists as e:
      raise DpedError(f"{e} (pass --overwrite to replace it)") from None
    for kind, (path, size) in written.items():
      print(f"TFLite {kind}: {path} ({_mb(size)}), input [batch, height, width, 3] dynamic")
