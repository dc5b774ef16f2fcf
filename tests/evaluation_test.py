"""`dped-tf evaluate` (docs/method.md §6, Table 2) against independent numpy metrics."""

import csv
import json
import os

from conftest import write_dped_folder
from conftest import random_weights_model
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
import pytest
import tensorflow as tf

from dped_tf import cli
from dped_tf import evaluation
from dped_tf import inference
from dped_tf.dataloaders import dped_folder
from dped_tf.dataloaders import tfrecords


def np_psnr(a, b):
  return 20 * np.log10(1 / np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def np_ssim(a, b, size=11, sigma=1.5):
  """Wang et al.'s SSIM: 11x11 Gaussian (sigma 1.5) window over valid positions, per
  channel, averaged; C1 = 0.01^2, C2 = 0.03^2 for [0, 1] images."""
  coords = np.arange(size) - (size - 1) / 2
  g = np.exp(-coords ** 2 / (2 * sigma ** 2))
  window = np.outer(g, g) / np.outer(g, g).sum()
  a, b = a.astype(np.float64), b.astype(np.float64)

  def blur(x):
    return np.einsum("hwcij,ij->hwc", sliding_window_view(x, (size, size), axis=(0, 1)), window)

  mu_a, mu_b = blur(a), blur(b)
  var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
  cov = blur(a * b) - mu_a * mu_b
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  return np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                 / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))


def test_metrics_match_numpy_on_small_images():
  rng = np.random.default_rng(0)
  dslr = rng.uniform(0, 1, (3, 24, 28, 3)).astype(np.float32)
  phone = np.clip(dslr * 0.8 + rng.normal(0, 0.05, dslr.shape), 0, 1).astype(np.float32)
  brighten = lambda x: np.minimum(x * 1.1 + 0.02, 1.0)  # noqa: E731
  results = evaluation.evaluate([(phone[:2], dslr[:2]), (phone[2:], dslr[2:])],
                                {"brighten": brighten})
  assert list(results) == [evaluation.BASELINE, "brighten"]
  for label, images in ((evaluation.BASELINE, phone), ("brighten", brighten(phone))):
    r = results[label]
    assert r["patches"] == 3
    assert r["psnr"] == pytest.approx(np.mean([np_psnr(x, y) for x, y in zip(images, dslr)]),
                                      abs=1e-3)
    assert r["ssim"] == pytest.approx(np.mean([np_ssim(x, y) for x, y in zip(images, dslr)]),
                                      abs=1e-4)
    assert 0 < r["ms_ssim"] <= 1
  assert results["brighten"]["psnr"] != pytest.approx(results[evaluation.BASELINE]["psnr"])


@pytest.fixture(scope="module")
def dped(tmp_path_factory):
  root = str(tmp_path_factory.mktemp("eval") / "dped")
  write_dped_folder(root, "sony", train=2, test=5, patch=40)
  model = str(tmp_path_factory.mktemp("models") / "g.keras")
  generator = random_weights_model()
  generator.save(model)
  return root, model, generator


def folder_patches(root):
  pairs = dped_folder.scan_pairs(root, "sony", "test").pairs
  load = lambda p: tf.io.decode_jpeg(tf.io.read_file(p)).numpy() / np.float32(255)  # noqa: E731
  return np.stack([load(p) for _, p, _ in pairs]), np.stack([load(d) for _, _, d in pairs])


def test_evaluate_cli_prints_baseline_and_models(dped, tmp_path, capsys):
  root, model, generator = dped
  out_json, out_csv = str(tmp_path / "r.json"), str(tmp_path / "r.csv")
  assert cli.main(["dped-tf", "evaluate", "--phone", "sony", "--dped_dir", root, "--model",
                   model, "--compare", f"again={model}", "--batch_size", "2", "--json",
                   out_json, "--csv", out_csv]) == 0
  printed = capsys.readouterr().out
  assert "phone (unprocessed)" in printed and "Table 2" in printed
  with open(out_json) as f:
    results = json.load(f)["results"]
  assert list(results) == [evaluation.BASELINE, "g", "again"]
  phone, dslr = folder_patches(root)
  enhanced = np.clip(inference.Enhancer.from_model(generator).whole(phone), 0, 1)
  for label, images in ((evaluation.BASELINE, phone), ("g", enhanced), ("again", enhanced)):
    assert results[label]["patches"] == 5
    assert results[label]["psnr"] == pytest.approx(
        np.mean([np_psnr(x, y) for x, y in zip(images, dslr)]), abs=1e-3)
    assert results[label]["ssim"] == pytest.approx(
        np.mean([np_ssim(x, y) for x, y in zip(images, dslr)]), abs=1e-4)
    assert f"{results[label]['psnr']:.2f} / {results[label]['ssim']:.4f}" in printed
  with open(out_csv) as f:
    rows = list(csv.DictReader(f))
  assert [r["method"] for r in rows] == list(results)
  assert float(rows[1]["psnr"]) == pytest.approx(results["g"]["psnr"], abs=1e-5)


def test_tfrecords_give_the_folder_numbers(dped, tmp_path, capsys):
  root, model, _ = dped
  records = str(tmp_path / "tfr")
  tfrecords.convert_dped_folder(root, "sony", records, patch_size=40)
  out_json = str(tmp_path / "r.json")
  assert cli.main(["dped-tf", "evaluate", "--phone", "sony", "--tfrecords", records,
                   "--model", model, "--json", out_json]) == 0
  capsys.readouterr()
  with open(out_json) as f:
    results = json.load(f)["results"]
  phone, dslr = folder_patches(root)
  assert results[evaluation.BASELINE]["patches"] == 5
  assert results[evaluation.BASELINE]["psnr"] == pytest.approx(
      np.mean([np_psnr(x, y) for x, y in zip(phone, dslr)]), abs=1e-3)


def test_evaluate_needs_a_model(dped, capsys):
  root, _, _ = dped
  assert cli.main(["dped-tf", "evaluate", "--phone", "sony", "--dped_dir", root]) == 2
  assert "--model" in capsys.readouterr().err
  assert not os.path.exists(os.path.join(root, "r.json"))


def test_evaluate_cli_takes_an_srcnn_model(dped, tmp_path, capsys):
  root, _, _ = dped
  srcnn = random_weights_model("srcnn", seed=6)
  path = str(tmp_path / "srcnn.keras")
  srcnn.save(path)
  out_json = str(tmp_path / "r.json")
  assert cli.main(["dped-tf", "evaluate", "--phone", "sony", "--dped_dir", root, "--model",
                   path, "--json", out_json]) == 0
  capsys.readouterr()
  with open(out_json) as f:
    results = json.load(f)["results"]
  phone, dslr = folder_patches(root)
  enhanced = np.clip(srcnn(phone).numpy(), 0, 1)
  assert results["srcnn"]["psnr"] == pytest.approx(
      np.mean([np_psnr(x, y) for x, y in zip(enhanced, dslr)]), abs=1e-3)
