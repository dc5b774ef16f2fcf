"""`dped-tf export`: a generator as a TF Serving SavedModel, ONNX, OpenVINO IR or LiteRT
files (docs/serving.md)."""

import os
import sys

from absl import flags

from dped_tf.configs import RELEASED_HELP
from dped_tf.configs import check_model
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.serving import LITERT_PRECISIONS

factory = lazy_import("dped_tf.modeling.factory")
saved_model = lazy_import("dped_tf.serving.saved_model")
formats = lazy_import("dped_tf.serving.formats")
quantization = lazy_import("dped_tf.serving.quantization")
served = lazy_import("dped_tf.serving.served")

USAGE = "--model MODEL --out FOLDER"
EXAMPLE = "dped-tf export --model dped:sony --format onnx --out export/sony"
REQUIRED = ("model", "out")


def define_flags(fv):
  flags.DEFINE_string("model", None, "Generator: a .keras file (dped, johnson or srcnn, from "
                      f"train or import-checkpoint) {RELEASED_HELP}.", flag_values=fv)
  flags.DEFINE_enum("format", "saved_model", ["saved_model", "onnx", "openvino", "litert",
                                              "tflite"],
                    "saved_model: OUT/<version>/ for TF Serving; onnx: OUT/generator.onnx; "
                    "openvino: OUT/generator.xml + .bin; litert: OUT/generator_<precision>"
                    ".tflite (tflite: deprecated name of litert).", flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder (created if missing; what goes in it: "
                      "--format).", flag_values=fv)
  flags.DEFINE_integer("version", None, "SavedModel version folder (default: one above the "
                       "highest in OUT, else 1).", lower_bound=1, flag_values=fv)
  flags.DEFINE_enum("image_format", "png", ["png", "jpeg"], "What the `enhance_image` "
                    "signature returns.", flag_values=fv)
  flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality of `enhance_image` output.",
                       lower_bound=1, upper_bound=100, flag_values=fv)
  flags.DEFINE_multi_enum("precision", ["float32", "float16"], LITERT_PRECISIONS,
                          "LiteRT precisions (repeat the flag): float32, float16 (half "
                          "weights), dynamic_int8 (int8 weights), int8 (int8 weights and "
                          "activations, calibrated).", flag_values=fv)
  flags.DEFINE_string("calibration_dir", None, "int8: phone-side training patches to "
                      "calibrate on (e.g. DPED's training_data/<phone>/; default: the "
                      "embedded sample's training photos).", flag_values=fv)
  flags.DEFINE_integer("calibration_patches", 32, "int8: how many 100x100 patches to "
                       "calibrate on.", lower_bound=1, flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing version folder / files.",
                    flag_values=fv)


def _mb(size):
  return f"{size / 1e6:.2f} MB"


def _export_saved_model(fv):
  version = fv.version or saved_model.next_version(fv.out)
  target = os.path.realpath(os.path.join(fv.out, str(version)))
  if os.path.realpath(fv.model).startswith(target + os.sep):
    raise DpedError(f"{fv.model}: the model lies inside the export folder {target}")
  generator = factory.load_generator(fv.model)
  try:
    path, size = saved_model.export_saved_model(generator, fv.out, version, fv.overwrite,
                                                fv.image_format, fv.jpeg_quality)
  except served.OutputExists as e:
    raise DpedError(f"{e} (pass --overwrite or another --version)") from None
  print(f"SavedModel version {version}: {path} ({_mb(size)}), signatures serving_default "
        f"(images float32 [batch, height, width, 3] -> enhanced), enhance_image "
        f"(image_bytes string [n] -> enhanced_bytes {fv.image_format})")


def check(fv, argv):
  """Flags that go together, the model and the output folder, before TensorFlow loads."""
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if fv.format == "tflite":
    print("dped-tf export: warning: --format tflite is deprecated, use --format litert "
          "(the same files)", file=sys.stderr)
  fmt = "litert" if fv.format == "tflite" else fv.format
  if fmt != "saved_model" and fv.version is not None:
    raise DpedError("--version applies to --format saved_model only")
  if fmt != "litert" and fv["precision"].present:
    raise DpedError("--precision applies to --format litert only")
  if "int8" not in fv.precision and fv.calibration_dir:
    raise DpedError("--calibration_dir applies to --precision int8 only")
  if fv.calibration_dir and not os.path.isdir(fv.calibration_dir):
    raise DpedError(f"{fv.calibration_dir}: calibration folder not found")
  check_model(fv.model)
  if os.path.exists(fv.out) and not os.path.isdir(fv.out):
    raise DpedError(f"{fv.out}: output path exists and is not a folder")


def main(fv, argv):  # pylint: disable=unused-argument  (check read argv)
  fmt = "litert" if fv.format == "tflite" else fv.format
  precisions = list(dict.fromkeys(fv.precision))
  int8 = "int8" in precisions
  if fmt == "saved_model":
    _export_saved_model(fv)
    return
  generator = factory.load_generator(fv.model)
  calibration = None
  if int8:
    calibration, source = quantization.calibration_patches(fv.calibration_dir,
                                                           fv.calibration_patches)
    note = "" if fv.calibration_dir else "no --calibration_dir: "
    print(f"int8: {note}calibrating on {len(calibration)} patches of {source}")
  try:
    written = formats.export_files(generator, fv.out, fmt, precisions, calibration,
                                   fv.overwrite)
  except served.OutputExists as e:
    raise DpedError(f"{e} (pass --overwrite to replace it)") from None
  for label, (path, size) in written.items():
    print(f"{label}: {path} ({_mb(size)}), input images [batch, height, width, 3] dynamic")
