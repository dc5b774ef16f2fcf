"""`dped-tf export --format onnx|openvino|litert`: each file written by the CLI, reloaded in
its own runtime (onnxruntime, OpenVINO, ai-edge-litert) and compared with Keras on crops of
a real photo at two sizes from one file (height and width are dynamic); and every Python
block of docs/serving.md run against those files (TF Serving's REST and gRPC requests
against the SavedModel's signatures, through stand-ins for the server)."""

import base64
import collections
import contextlib
import io
import json
import os
import re
import sys
import types
import urllib.request

import cv2
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata
from tensorflow.core.framework import tensor_pb2

from dped_tf import cli
from dped_tf.serving import runtimes
from dped_tf.testing.models import random_weights_model

PHOTO = skdata.astronaut()  # 512x512 RGB, a real photo
CROPS = [PHOTO[30:78, 170:234], PHOTO[200:256, 100:180]]  # 48x64, 56x80


def _psnr(a, b):
  return 10 * np.log10(1 / max(np.mean((np.asarray(a, np.float64) - b) ** 2), 1e-20))


def _keras(generator, images):
  return np.clip(generator(images, training=False).numpy(), 0, 1)


def _export(model, out, *flags):
  log = io.StringIO()
  with contextlib.redirect_stdout(log):
    assert cli.main(["dped-tf", "export", "--model", model, "--out", out, *flags]) == 0
  return log.getvalue()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("formats") / "export"  # docs/serving.md's paths
  root.mkdir()
  generator = random_weights_model()
  model = str(root / "generator.keras")
  generator.save(model)
  calibration = root / "patches"  # phone-side patches stand-in: other real photos
  calibration.mkdir()
  for i, photo in enumerate((skdata.coffee(), skdata.chelsea())):
    cv2.imwrite(str(calibration / f"{i}.png"), photo[100:300, 100:300, ::-1])
  logs = {fmt: _export(model, str(root / fmt), "--format", fmt) for fmt in ("onnx", "openvino")}
  _export(model, str(root / "dped"), "--format", "saved_model")
  logs["litert"] = _export(model, str(root / "litert"), "--format", "litert",
                           "--precision", "dynamic_int8", "--precision", "int8",
                           "--calibration_dir", str(calibration),
                           "--calibration_patches", "8")
  return {"root": root, "model": model, "generator": generator, "logs": logs,
          "calibration": str(calibration)}


def _images(crop):
  return crop[None].astype(np.float32) / 255.0


def test_onnx_and_openvino_float32_match_keras(exported):
  root, generator = exported["root"], exported["generator"]
  onnx = root / "onnx" / "generator.onnx"
  assert f"onnx: {onnx} (" in exported["logs"]["onnx"]
  assert os.path.getsize(onnx) > 4 * 401_475  # the float32 weights are in the file
  assert sorted(os.listdir(root / "openvino")) == ["generator.bin", "generator.xml"]
  runners = {"onnx": runtimes.onnx_runner(str(onnx)),
             "openvino f32": runtimes.openvino_runner(str(root / "openvino" / "generator.xml"),
                                                      "f32"),
             "openvino bf16": runtimes.openvino_runner(str(root / "openvino" / "generator.xml"),
                                                       "bf16")}
  for crop in CROPS:
    images = _images(crop)
    expected = _keras(generator, images)
    assert expected.std() > 0.05
    got = {name: run(images) for name, run in runners.items()}
    assert all(g.shape == images.shape for g in got.values())
    assert _psnr(got["onnx"], expected) >= 60
    assert _psnr(got["openvino f32"], expected) >= 60
    # bfloat16 (OpenVINO's default on a CPU with it): 8 mantissa bits, ~36-38 dB measured
    # here on random weights; exactly float32 where the CPU has no bfloat16.
    assert _psnr(got["openvino bf16"], expected) >= 30


def test_litert_int8_precisions_are_small_and_close(exported):
  root, generator = exported["root"], exported["generator"]
  log = exported["logs"]["litert"]
  assert f"calibrating on 8 patches of 2 images of {exported['calibration']}" in log
  paths = {p: str(root / "litert" / f"generator_{p}.tflite") for p in ("dynamic_int8", "int8")}
  for precision, path in paths.items():
    assert f"litert {precision}: {path} (" in log
    # int8 weights: a quarter of float32's 4 bytes x 401,475 parameters, plus the graph
    assert 401_475 < os.path.getsize(path) < 0.35 * 4 * 401_475
  runners = {p: runtimes.litert_runner(path, threads=2) for p, path in paths.items()}
  for crop in CROPS:
    images = _images(crop)
    expected = _keras(generator, images)
    flat = np.broadcast_to(expected.mean((1, 2), keepdims=True), expected.shape)
    got = {p: run(images) for p, run in runners.items()}
    # Random weights are harsh on int8 (README, "Ship it": measured 28-30 dB and 15-19 dB);
    # both must still be far closer than the best flat image.
    assert _psnr(got["dynamic_int8"], expected) >= 24
    assert _psnr(got["int8"], expected) >= _psnr(flat, expected) + 3


def test_every_model_kind_exports(exported, tmp_path):
  for kind, fmt, run in (("srcnn", "litert", runtimes.litert_runner),
                         ("johnson", "onnx", runtimes.onnx_runner)):
    generator = random_weights_model(kind, norm="batch" if kind == "johnson" else "instance",
                                     seed=5)
    model = str(tmp_path / f"{kind}.keras")
    generator.save(model)
    flags = ["--precision", "float32"] if fmt == "litert" else []
    _export(model, str(tmp_path / kind), "--format", fmt, *flags)
    name = "generator_float32.tflite" if fmt == "litert" else "generator.onnx"
    images = _images(CROPS[1])
    expected = _keras(generator, images)
    assert expected.std() > 0.05
    assert _psnr(run(str(tmp_path / kind / name))(images), expected) >= 60


def test_bad_flags_and_existing_files_give_one_line(exported, tmp_path, capsys):
  model, root = exported["model"], exported["root"]
  cases = [
      (["--format", "onnx", "--precision", "int8"], "--precision applies to --format litert"),
      (["--format", "onnx", "--version", "2"], "--version applies to --format saved_model"),
      (["--format", "litert", "--calibration_dir", str(tmp_path)],
       "--calibration_dir applies to --precision int8 only"),
      (["--format", "litert", "--precision", "int8", "--calibration_dir",
        str(tmp_path / "none")], "calibration folder not found"),
      (["--format", "litert", "--precision", "int8", "--calibration_dir", str(tmp_path)],
       "no .jpg or .png images to calibrate on"),
  ]
  for flags, message in cases:
    assert cli.main(["dped-tf", "export", "--model", model, "--out", str(tmp_path / "o"),
                     *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
  before = os.path.getmtime(root / "onnx" / "generator.onnx")
  assert cli.main(["dped-tf", "export", "--model", model, "--out", str(root / "onnx"),
                   "--format", "onnx"]) == 2
  assert "generator.onnx: exists (pass --overwrite to replace it)" in capsys.readouterr().err
  assert os.path.getmtime(root / "onnx" / "generator.onnx") == before
  assert not os.path.exists(tmp_path / "o")


DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "serving.md")


def _doc_blocks():
  with open(DOC) as f:
    return re.findall(r"```python\n(.*?)```", f.read(), re.S)


def _fake_tf_serving_rest(signatures):
  """urlopen for TF Serving's REST `:predict` (row format: `instances`; `{"b64": ...}` for
  string inputs and for outputs whose name ends in `_bytes`), run on the signatures."""
  def urlopen(request):
    assert request.full_url == "http://localhost:8501/v1/models/dped:predict"
    assert request.get_header("Content-type") == "application/json"
    body = json.loads(request.data)
    signature = signatures[body.get("signature_name", "serving_default")]
    ((name, spec),) = signature.structured_input_signature[1].items()
    rows = [base64.b64decode(r["b64"]) if isinstance(r, dict) else r for r in body["instances"]]
    ((out_name, out),) = signature(**{name: tf.constant(rows, spec.dtype)}).items()
    predictions = [{"b64": base64.b64encode(v).decode()} if out_name.endswith("_bytes")
                   else v.tolist() for v in out.numpy()]
    return io.BytesIO(json.dumps({"predictions": predictions}).encode())
  return urlopen


def _fake_tf_serving_apis(signatures):
  """`tensorflow_serving.apis` (not installed): a PredictRequest with the real TensorProto
  and a stub whose Predict runs the named signature."""
  def request():
    return types.SimpleNamespace(model_spec=types.SimpleNamespace(name="", signature_name=""),
                                 inputs=collections.defaultdict(tensor_pb2.TensorProto))

  class Stub:
    def __init__(self, channel):
      self.channel = channel

    def Predict(self, request, timeout):  # noqa: N802 (the gRPC method's name)
      assert request.model_spec.name == "dped" and timeout > 0
      signature = signatures[request.model_spec.signature_name]
      outputs = signature(**{k: tf.constant(tf.make_ndarray(v))
                             for k, v in request.inputs.items()})
      return types.SimpleNamespace(outputs={k: tf.make_tensor_proto(v.numpy())
                                            for k, v in outputs.items()})
  apis = types.ModuleType("tensorflow_serving.apis")
  apis.predict_pb2 = types.SimpleNamespace(PredictRequest=request)
  apis.prediction_service_pb2_grpc = types.SimpleNamespace(PredictionServiceStub=Stub)
  return apis


def test_every_python_block_of_the_serving_doc_runs(exported, monkeypatch):
  root, generator = exported["root"], exported["generator"]
  monkeypatch.chdir(root.parent)
  photo = CROPS[1]
  cv2.imwrite("photo.jpg", photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
  signatures = tf.saved_model.load(str(root / "dped" / "1")).signatures
  monkeypatch.setattr(urllib.request, "urlopen", _fake_tf_serving_rest(signatures))
  monkeypatch.setitem(sys.modules, "tensorflow_serving", types.ModuleType("tensorflow_serving"))
  monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", _fake_tf_serving_apis(signatures))
  images = _images(CROPS[0])
  expected = _keras(generator, images)
  blocks = _doc_blocks()
  assert len(blocks) == 6
  for block in blocks:
    scope = {"images": images}
    exec(compile(block, DOC, "exec"), scope)  # noqa: S102 (the doc's own code)
    enhanced = np.asarray(scope["enhanced"], np.float32)
    assert enhanced.shape == images.shape
    if "generator_int8" in block:
      flat = np.broadcast_to(expected.mean((1, 2), keepdims=True), expected.shape)
      assert _psnr(enhanced, expected) >= _psnr(flat, expected) + 3
    else:
      assert _psnr(enhanced, expected) >= 60, block
    if "enhanced_png" in scope:
      got = cv2.imdecode(np.frombuffer(scope["enhanced_png"], np.uint8), cv2.IMREAD_COLOR)
      served = tf.io.decode_jpeg(open("photo.jpg", "rb").read()).numpy() / 255.0
      want = np.round(_keras(generator, served[None].astype(np.float32))[0] * 255)
      assert np.abs(got[..., ::-1].astype(int) - want).max() <= 1
