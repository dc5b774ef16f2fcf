"""`dped-tf export`: a TF Serving SavedModel reloaded without dped_tf, and LiteRT files
through the deprecated `--format tflite`."""

import contextlib
import io
import os
import subprocess
import sys
import textwrap
import warnings

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from dped_tf.testing.models import random_weights_model

from dped_tf import cli
from dped_tf.serving import saved_model
from dped_tf.serving import served
from dped_tf.modeling.generator import Generator


def _expected(generator, images):
  """In-library inference: the generator on whole images, clipped to [0, 1]."""
  return np.clip(generator(np.asarray(images, np.float32), training=False).numpy(), 0, 1)


def _psnr(a, b):
  return 10 * np.log10(1 / np.mean((np.asarray(a, np.float64) - b) ** 2))


PHOTO = skdata.astronaut()  # 512x512 RGB
CROP_A = PHOTO[30:78, 170:234]  # 48x64
CROP_B = PHOTO[200:240, 100:172]  # 40x72


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  root = tmp_path_factory.mktemp("export")
  generator = random_weights_model()
  model = str(root / "generator.keras")
  generator.save(model)
  log, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(log), contextlib.redirect_stderr(err):
    for argv in (["--format", "saved_model", "--out", str(root / "serving")],
                 ["--format", "tflite", "--out", str(root / "tflite")]):
      assert cli.main(["dped-tf", "export", "--model", model, *argv]) == 0
  return {"root": root, "model": model, "generator": generator, "log": log.getvalue(), "err": err.getvalue(),
          "saved_model": str(root / "serving" / "1"), "tflite": str(root / "tflite")}


RELOAD = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    d = np.load(sys.argv[2])
    enhanced = model.signatures["serving_default"](images=tf.constant(d["images"]))["enhanced"]
    encoded = model.signatures["enhance_image"](
        image_bytes=tf.constant([d["png"].tobytes(), d["jpeg"].tobytes()]))["enhanced_bytes"]
    assert not any(m.split(".")[0] == "dped_tf" for m in sys.modules), "dped_tf imported"
    np.savez(sys.argv[3], enhanced=enhanced.numpy(),
             **{f"out{i}": np.frombuffer(b, np.uint8) for i, b in enumerate(encoded.numpy())})
""")


def test_saved_model_in_a_fresh_process_matches_the_library(exported, tmp_path):
  assert os.path.isfile(os.path.join(exported["saved_model"], "saved_model.pb"))
  assert os.path.isdir(os.path.join(exported["saved_model"], "variables"))
  images = np.stack([CROP_A, PHOTO[300:348, 300:364]]).astype(np.float32) / 255.0
  png = cv2.imencode(".png", CROP_A[..., ::-1])[1]
  jpeg = cv2.imencode(".jpg", CROP_B[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
  np.savez(tmp_path / "in.npz", images=images, png=png, jpeg=jpeg)
  subprocess.run([sys.executable, "-c", RELOAD, exported["saved_model"],
                  str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
                 check=True, cwd=tmp_path, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  out = np.load(tmp_path / "out.npz")
  generator = exported["generator"]

  expected = _expected(generator, images)
  assert expected.std() > 0.05
  assert np.abs(out["enhanced"] - expected).max() <= 1e-5

  # enhance_image: PNG out (the default), each image at its own size.
  jpeg_pixels = tf.io.decode_jpeg(jpeg.tobytes()).numpy()  # what the server decodes
  for i, source in enumerate((CROP_A, jpeg_pixels)):
    assert out[f"out{i}"][:8].tobytes() == b"\x89PNG\r\n\x1a\n"
    got = cv2.imdecode(out[f"out{i}"], cv2.IMREAD_UNCHANGED)[..., ::-1].astype(int)
    want = np.round(_expected(generator, source[None] / 255.0)[0] * 255).astype(int)
    assert got.shape == source.shape
    assert np.abs(got - want).max() <= 1


def test_saved_model_cli_lists_both_signatures(exported):
  cli_path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
  shown = subprocess.run([cli_path, "show", "--all", "--dir", exported["saved_model"]],
                         check=True, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
  for line in ("signature_def['serving_default']", "signature_def['enhance_image']",
               "inputs['images']", "outputs['enhanced']", "shape: (-1, -1, -1, 3)",
               "inputs['image_bytes']", "outputs['enhanced_bytes']", "dtype: DT_STRING"):
    assert line in shown


def _run_tflite(path, images):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
    interpreter = tf.lite.Interpreter(model_path=path)
  (inp,), (outp,) = interpreter.get_input_details(), interpreter.get_output_details()
  interpreter.resize_tensor_input(inp["index"], images.shape)
  interpreter.allocate_tensors()
  interpreter.set_tensor(inp["index"], images)
  interpreter.invoke()
  return interpreter.get_tensor(outp["index"])


def test_tflite_float32_and_float16_match_keras_at_two_sizes(exported):
  paths = {k: os.path.join(exported["tflite"], f"generator_{k}.tflite")
           for k in ("float32", "float16")}
  sizes = {k: os.path.getsize(p) for k, p in paths.items()}
  assert exported["err"].count("\n") == 1  # one line for the old name
  assert "--format tflite is deprecated, use --format litert" in exported["err"]
  assert sizes["float32"] > 4 * 401_475  # the weights are in the file
  assert sizes["float16"] < 0.55 * sizes["float32"]
  for kind, path in paths.items():
    assert f"litert {kind}: {path} ({sizes[kind] / 1e6:.2f} MB)" in exported["log"]
  for crop in (CROP_A, CROP_B):  # one file, two input sizes
    images = crop[None].astype(np.float32) / 255.0
    expected = _expected(exported["generator"], images)
    assert np.abs(_run_tflite(paths["float32"], images) - expected).max() <= 1e-4
    assert _psnr(_run_tflite(paths["float16"], images), expected) >= 40


def test_jpeg_output_of_the_image_signature(exported):
  module = saved_model.serving_module(exported["generator"], "jpeg", jpeg_quality=95)
  png = cv2.imencode(".png", CROP_A[..., ::-1])[1].tobytes()
  (data,) = module.serve_bytes(tf.constant([png]))["enhanced_bytes"].numpy()
  assert data[:2] == b"\xff\xd8"
  got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1] / 255.0
  assert _psnr(got, _expected(exported["generator"], CROP_A[None] / 255.0)[0]) >= 30


def test_versions_overwrite_and_bad_flags(exported, tmp_path, capsys):
  model = exported["model"]
  assert saved_model.next_version(str(exported["root"] / "serving")) == 2
  out = tmp_path / "serving"
  (out / "3").mkdir(parents=True)
  (out / "3" / "old").write_text("x")
  (out / ".tmp-1-9").mkdir()
  assert saved_model.next_version(str(out)) == 4
  argv = ["dped-tf", "export", "--model", model, "--out", str(out), "--version", "3"]
  assert cli.main(argv) == 2
  assert "export version exists" in capsys.readouterr().err
  assert (out / "3" / "old").exists()
  assert cli.main(argv + ["--overwrite"]) == 0
  assert sorted(os.listdir(out / "3")) == ["assets", "fingerprint.pb", "saved_model.pb",
                                          "variables"]
  assert sorted(os.listdir(out)) == [".tmp-1-9", "3"]
  assert cli.main(["dped-tf", "export", "--model", model, "--out", str(tmp_path / "t"),
                   "--format", "tflite", "--version", "2"]) == 2
  assert "--version applies to --format saved_model only" in capsys.readouterr().err


def test_float32_copy_of_a_mixed_precision_generator():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  mixed = random_weights_model()
  copy = served.float32_copy(mixed)
  keras.mixed_precision.set_global_policy("float32")
  assert mixed.conv1.compute_dtype == "bfloat16"
  assert {layer.compute_dtype for layer in (*copy.conv_layers(), *copy.norm_layers())} == {
      "float32"}
  reference = Generator(norm="instance")
  reference.build((None, None, None, 3))
  reference.set_weights(mixed.get_weights())
  images = CROP_B[None].astype(np.float32) / 255.0
  assert np.abs(copy(images).numpy() - reference(images).numpy()).max() <= 1e-6


def test_srcnn_exports_like_any_generator(tmp_path, capsys):
  srcnn = random_weights_model("srcnn", seed=3)
  model = str(tmp_path / "srcnn.keras")
  srcnn.save(model)
  assert cli.main(["dped-tf", "export", "--model", model, "--out",
                   str(tmp_path / "serving")]) == 0
  assert "SavedModel version 1" in capsys.readouterr().out
  served = tf.saved_model.load(str(tmp_path / "serving" / "1"))
  images = CROP_A[None].astype(np.float32) / 255.0
  got = served.signatures["serving_default"](images=tf.constant(images))["enhanced"].numpy()
  expected = _expected(srcnn, images)
  assert expected.std() > 0.05
  assert np.abs(got - expected).max() <= 1e-5
