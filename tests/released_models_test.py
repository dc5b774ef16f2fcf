"""`--model dped:iphone|blackberry|sony`: the authors' released models downloaded once into
Keras' cache, through a local mirror serving a checkpoint in their layout; no network and a
wrong sha256 as one line, nothing cached; every command that takes a model."""

import hashlib
import json
import os
import shutil
import subprocess
import sys

from absl import flags
import numpy as np
from PIL import Image
import pytest
from skimage import data as skdata

from dped_tf import cli
from dped_tf import configs
from dped_tf.commands import enhance
from dped_tf.commands import serve
from dped_tf.enhancement.executor import Enhancer
from dped_tf.errors import DpedError
from dped_tf.modeling import released
from dped_tf.modeling.factory import load_generator
from dped_tf.testing.data import write_dped_folder
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.releases import refused_url
from dped_tf.testing.releases import serve_folder
from dped_tf.testing.releases import write_mirror
from dped_tf.training import loop
from dped_tf.training import run as run_lib

# The issue's table (models_orig/ at the pinned commit), written out.
ISSUE_TABLE = """
iphone_orig.index 8777e61b30adb8c4e99eb22e5ecca3f80c237e6288dc07c8a3fb7e6fee6865a8
iphone_orig.data-00000-of-00001 9d289d0914ae0f41ded639e6282e6710ebb79ab8dc23865198c2748d7dc083fc
blackberry_orig.index e907cd7a93831f9138f1706e6d40b997b18ca4b8afc5a6da5f0d3a2aab8aa0e1
blackberry_orig.data-00000-of-00001 ec3332ae3e03d4317fd4c88e3f1885c5df8722f34d4142ec8f77025c8b3add82
sony_orig.index 5e56d778b4e9149883cc00a79e7f4f5dd2e1ee35e64e3419c64b5433b1891574
sony_orig.data-00000-of-00001 6338ab1c409a67c99ad5da416051887a63b576c351d8447741c8d378671e3ab8
"""
RELEASE_ENV = ("KERAS_HOME", released.URL_VARIABLE, released.SHA256_VARIABLE)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
  """(mirror folder, its sha256 JSON, the model its sony_orig checkpoint holds)."""
  root = str(tmp_path_factory.mktemp("mirror"))
  model = random_weights_model(seed=7)
  return root, write_mirror(root, model), model


@pytest.fixture(scope="module")
def cached(mirror, tmp_path_factory):
  """Environment variables under which `dped:sony` is already cached (downloaded once,
  in this process, from the mirror, which is then shut down)."""
  root, hashes, _ = mirror
  home = str(tmp_path_factory.mktemp("keras_home"))
  with serve_folder(root) as url, pytest.MonkeyPatch.context() as mp:
    env = {"KERAS_HOME": home, released.URL_VARIABLE: url, released.SHA256_VARIABLE: hashes}
    for name, value in env.items():
      mp.setenv(name, value)
    released.keras_file("dped:sony")
  return env


def set_env(monkeypatch, env):
  for name in RELEASE_ENV:
    monkeypatch.delenv(name, raising=False)
  for name, value in env.items():
    monkeypatch.setenv(name, value)


def cache_files(home):
  """The files under Keras' `models/` cache (Keras itself writes `keras.json` beside it)."""
  return sorted(os.path.relpath(os.path.join(d, f), home)
                for d, _, files in os.walk(os.path.join(home, "models")) for f in files)


def photo_png(path):
  Image.fromarray(skdata.chelsea()[100:164, 150:246]).save(path)  # 64x96 real photo
  return np.asarray(Image.open(path), np.float32) / 255.0


def test_pinned_hashes_are_the_issues_table():
  table = dict(line.split() for line in ISSUE_TABLE.strip().splitlines())
  assert released.SHA256 == table
  assert released.RELEASES_URL == ("https://raw.githubusercontent.com/aiff22/DPED/"
                                   "ebb01315238430f7c66eaaf84996fcb59877f97f")


def test_enhance_downloads_through_a_mirror_then_uses_the_cache(mirror, tmp_path, monkeypatch,
                                                                capsys):
  root, hashes, model = mirror
  image = photo_png(tmp_path / "photo.png")
  home = str(tmp_path / "keras_home")
  with serve_folder(root) as url:
    env = {"KERAS_HOME": home, released.URL_VARIABLE: url, released.SHA256_VARIABLE: hashes}
    proc = subprocess.run(
        [sys.executable, "-m", "dped_tf.cli", "enhance", str(tmp_path / "photo.png"),
         "--model", "dped:sony", "--out", str(tmp_path / "first"), "--precision", "float32"],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env}, check=False)
  assert proc.returncode == 0, proc.stdout + proc.stderr
  assert f"{url}/models_orig/sony_orig.index" in proc.stdout
  expected = np.clip(model(image[None], training=False).numpy()[0], 0, 1) * 255
  got = np.asarray(Image.open(tmp_path / "first" / "photo.png"), np.float32)
  assert np.abs(got - expected).max() <= 0.51  # the model the checkpoint holds
  mirror_files = cache_files(home)
  assert len(mirror_files) == 3 and all(  # a mirror's own hashes: never the released cache
      f.startswith(os.path.join("models", "dped_tf", "sha256-")) for f in mirror_files)
  assert sorted(os.path.basename(f) for f in mirror_files) == [
      "sony_orig.data-00000-of-00001", "sony_orig.index", "sony_orig.keras"]

  # The server is gone: a second run reads the cached .keras.
  set_env(monkeypatch, env)
  assert cli.main(["dped-tf", "enhance", str(tmp_path / "photo.png"), "--model", "dped:sony",
                   "--out", str(tmp_path / "second"), "--precision", "float32"]) == 0
  assert "Downloading" not in capsys.readouterr().out
  np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "second" / "photo.png")),
                                got.astype(np.uint8))
  assert cache_files(home) == mirror_files


def one_line_error(argv, capsys):
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  lines = captured.err.strip().splitlines()
  assert len(lines) == 1, captured.err
  return lines[0]


def test_no_network_is_one_line_naming_the_url_and_the_manual_way(tmp_path, monkeypatch,
                                                                  capsys):
  url, home = refused_url(), str(tmp_path / "keras_home")
  photo_png(tmp_path / "photo.png")
  set_env(monkeypatch, {"KERAS_HOME": home, released.URL_VARIABLE: url})  # pinned hashes
  line = one_line_error(["dped-tf", "enhance", str(tmp_path / "photo.png"), "--model",
                         "dped:iphone", "--out", str(tmp_path / "out")], capsys)
  assert f"cannot download {url}/models_orig/iphone_orig.index" in line
  assert "Connection refused" in line
  assert "git clone https://github.com/aiff22/DPED" in line
  assert "dped-tf import-checkpoint --checkpoint DPED/models_orig/iphone_orig" in line
  assert cache_files(home) == []


def test_a_wrong_sha256_is_one_line_and_nothing_is_cached(mirror, tmp_path, monkeypatch,
                                                          capsys):
  root, hashes, _ = mirror
  with open(hashes) as f:
    table = json.load(f)
  served = table["sony_orig.data-00000-of-00001"]
  table["sony_orig.data-00000-of-00001"] = "0" * 64  # the index matches, the data not
  wrong = tmp_path / "wrong.json"
  wrong.write_text(json.dumps(table))
  home = str(tmp_path / "keras_home")
  with serve_folder(root) as url:
    set_env(monkeypatch, {"KERAS_HOME": home, released.URL_VARIABLE: url,
                          released.SHA256_VARIABLE: str(wrong)})
    line = one_line_error(["dped-tf", "export", "--model", "dped:sony", "--out",
                           str(tmp_path / "export")], capsys)
  assert f"{url}/models_orig/sony_orig.data-00000-of-00001 has sha256 {served}" in line
  assert f"not {'0' * 64}; nothing cached" in line
  assert cache_files(home) == []


def test_unknown_names_and_stray_hashes_are_one_line(tmp_path, monkeypatch, capsys):
  set_env(monkeypatch, {"KERAS_HOME": str(tmp_path)})
  line = one_line_error(["dped-tf", "export", "--model", "dped:foo", "--out",
                         str(tmp_path / "export")], capsys)
  assert "dped:foo: no such released model (choose from dped:iphone, dped:blackberry, " \
         "dped:sony)" in line
  monkeypatch.setenv(released.SHA256_VARIABLE, str(tmp_path / "h.json"))
  with pytest.raises(DpedError, match="DPED_TF_RELEASES_SHA256 is set without "
                                      "DPED_TF_RELEASES_URL"):
    load_generator("dped:sony")
  assert cache_files(str(tmp_path)) == []


def test_train_and_serve_take_a_released_model(cached, mirror, monkeypatch):
  _, _, model = mirror
  set_env(monkeypatch, {**cached, released.URL_VARIABLE: refused_url()})  # cache only
  trainer, _ = loop.build_trainer(configs.TrainConfig(init_from="dped:sony",
                                                      vgg_weights="none"))
  for w, expected in zip(trainer.generator.weights, model.weights):
    np.testing.assert_array_equal(w.numpy(), expected.numpy())
  source = run_lib.generator_source(configs.TrainConfig(init_from="dped:sony"), False)
  assert source["init_from"]["path"] == released.cached_file("dped:sony")
  assert source["init_from"]["released"] == "dped:sony" and source["init_from"]["sha256"]

  fv = flags.FlagValues()
  serve.define_flags(fv)
  fv(["serve", "--model", "dped:sony", "--precision", "float32"])
  enhancer, _ = enhance.load_enhancer(fv)
  image = skdata.chelsea()[:32, :48].astype(np.float32)[None] / 255
  np.testing.assert_allclose(enhancer.whole(image), Enhancer(model, "float32").whole(image),
                             atol=1e-5)


def test_table2_and_evaluate_take_a_released_model(cached, mirror, tmp_path, monkeypatch,
                                                   run_experiment):
  _, _, model = mirror
  set_env(monkeypatch, {**cached, released.URL_VARIABLE: refused_url()})  # cache only
  path = str(tmp_path / "same.keras")
  model.save(path)
  root = write_dped_folder(str(tmp_path / "dped"), train=1, test=2)
  out = tmp_path / "table"
  printed = run_experiment("table2", "--phone", "sony", "--dped_dir", root, "--out", str(out),
                           "--batch_size", "2", "--model", "DPED=dped:sony", "--model",
                           f"file={path}")
  record = json.loads((out / "table2.json").read_text())
  results = record["results"]
  assert list(results) == ["phone (unprocessed)", "DPED", "file"]
  cached_file = released.cached_file("dped:sony")
  assert record["models"]["DPED"] == {"path": cached_file, "release": "dped:sony",
                                      "sha256": hashlib.sha256(
                                          open(cached_file, "rb").read()).hexdigest()}
  assert "release" not in record["models"]["file"]
  assert results["DPED"]["patches"] == 2
  for key in ("psnr", "ssim", "released_psnr", "released_ms_ssim"):
    assert results["DPED"][key] == results["file"][key]
  assert "| Sony (published) | - | 21.81 / 0.9437 | - |" in printed


def test_a_cached_model_that_does_not_load_is_imported_again(cached, mirror, tmp_path,
                                                             monkeypatch):
  _, _, model = mirror
  home = str(tmp_path / "keras_home")
  shutil.copytree(cached["KERAS_HOME"], home)
  set_env(monkeypatch, {**cached, "KERAS_HOME": home, released.URL_VARIABLE: refused_url()})
  path = released.cached_file("dped:sony")
  with open(path, "r+b") as f:
    f.truncate(100)
  loaded = load_generator("dped:sony")  # from the cached checkpoint: no network
  for w, expected in zip(loaded.weights, model.weights):
    np.testing.assert_array_equal(w.numpy(), expected.numpy())
  assert load_generator(path).count_params() == model.count_params()
