"""ONNX, OpenVINO IR and LiteRT files through Keras' own `model.export(format=...)`
(docs/serving.md). Each holds `served.served_model`: input `images` float32
[batch, height, width, 3] with batch, height and width dynamic, output the enhanced images.

LiteRT comes in four precisions: `float32`; `float16` (weights stored in half precision,
the converter's option); `dynamic_int8` (int8 weights, float activations) and `int8`
(int8 weights and activations, calibrated) from `quantization`.
"""

import os
import tempfile

import tensorflow as tf

from dped_tf.fileio import atomic_write_bytes
from dped_tf.serving import LITERT_PRECISIONS
from dped_tf.serving import quantization
from dped_tf.serving.served import OutputExists, served_model

FORMATS = ("onnx", "openvino", "litert")


def file_names(fmt, precisions=("float32",)):
  """label -> the files `export` writes into the output folder for `fmt` (the first is the
  one to load)."""
  if fmt == "onnx":
    return {"onnx": ["generator.onnx"]}
  if fmt == "openvino":
    return {"openvino": ["generator.xml", "generator.bin"]}
  return {f"litert {p}": [f"generator_{p}.tflite"] for p in precisions}


def _keras_export(model, fmt, name, **kwargs):
  """{file name: bytes} that `model.export` writes for `fmt` at `name`."""
  with tempfile.TemporaryDirectory() as tmp:
    model.export(os.path.join(tmp, name), format=fmt, verbose=False, **kwargs)
    out = {}
    for written in os.listdir(tmp):
      with open(os.path.join(tmp, written), "rb") as f:
        out[written] = f.read()
    return out


def litert_models(model, precisions, calibration=None):
  """precision -> LiteRT flatbuffer bytes of the called Keras `model`; `calibration` (float32
  [1, h, w, 3] arrays) is needed for `int8`."""
  name = "generator.tflite"
  kinds = {"float32": {}, "float16": {"optimizations": [tf.lite.Optimize.DEFAULT],
                                      "target_spec": {"supported_types": [tf.float16]}}}
  unknown = set(precisions) - set(LITERT_PRECISIONS)
  if unknown:
    raise ValueError(f"LiteRT precisions are {LITERT_PRECISIONS}, got {sorted(unknown)}")
  models = {}
  float32 = None
  for p in precisions:
    if p in kinds:
      models[p] = _keras_export(model, "litert", name, **kinds[p])[name]
    else:
      float32 = float32 or models.get("float32") or _keras_export(model, "litert", name)[name]
      models[p] = quantization.quantize(float32, p, calibration)
  return models


def export_files(generator, out_dir, fmt, precisions=("float32",), calibration=None,
                 overwrite=False):
  """Writes `generator` as `fmt` (onnx, openvino, litert) into `out_dir`; returns
  {label: (path of the file to load, size in bytes of its files)}. Files are written
  atomically; existing ones are replaced only with `overwrite`."""
  if fmt not in FORMATS:
    raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
  names = file_names(fmt, precisions)
  paths = [os.path.join(out_dir, n) for files in names.values() for n in files]
  existing = [p for p in paths if os.path.exists(p)]
  if existing and not overwrite:
    raise OutputExists(f"{existing[0]}: exists")
  model = served_model(generator)
  if fmt == "litert":
    written = {f"generator_{p}.tflite": data
               for p, data in litert_models(model, precisions, calibration).items()}
  else:
    written = _keras_export(model, fmt, names[fmt][0])
  os.makedirs(out_dir, exist_ok=True)
  for label, files in names.items():  # the file to load last: its weights are there first
    for name in reversed(files):
      atomic_write_bytes(os.path.join(out_dir, name), written[name])
  return {label: (os.path.join(out_dir, files[0]), sum(len(written[n]) for n in files))
          for label, files in names.items()}
