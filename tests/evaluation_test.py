"""`dped-tf evaluate` (docs/method.md §6, Table 2) against independent numpy metrics."""

import csv
import json
import os

import numpy as np
import pytest
from scipy import ndimage
import tensorflow as tf

from dped_tf import cli
from dped_tf import evaluation
from dped_tf.dataloaders import dped_folder
from dped_tf.dataloaders import tfrecords
from dped_tf.enhancement.executor import Enhancer
from dped_tf.testing.data import write_dped_folder
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.numpy_metrics import np_psnr, np_released_ms_ssim, np_ssim


def constant_batch(dslr_value, phone_values, size=12):
  """Flat patches: phone patch i is `phone_values[i]` everywhere, the DSLR `dslr_value`."""
  phone = np.ones((len(phone_values), size, size, 3), np.float32) * np.float32(
      phone_values)[:, None, None, None]
  return phone, np.full_like(phone, dslr_value)


def flat_ssim(a, b, c1):
  """SSIM of two flat images: no variance, so only the luminance term is left."""
  return (2 * a * b + c1) / (a * a + b * b + c1)


def test_both_protocols_on_batches_computed_by_hand():
  # DSLR 0.4 everywhere. Batch 1: 50 patches off by 0.1 (MSE 0.01). Batch 2: 25 off by 0.1
  # and 25 by 0.01 (batch MSE 0.00505). Batch 3, partial: 7 off by 0.5 (dropped by the
  # released protocol, counted per patch).
  batches = [constant_batch(0.4, [0.5] * 50), constant_batch(0.4, [0.5] * 25 + [0.41] * 25),
             constant_batch(0.4, [0.9] * 7)]
  r = evaluation.evaluate(batches, {})[evaluation.BASELINE]
  assert (r["patches"], r["full_batches"], r["batch_size"]) == (107, 2, 50)
  psnr = lambda mse: -10 * np.log10(mse)  # noqa: E731
  assert r["released_psnr"] == pytest.approx((psnr(0.01) + psnr(0.00505)) / 2, abs=1e-4)
  assert r["psnr"] == pytest.approx((75 * psnr(0.01) + 25 * psnr(1e-4) + 7 * psnr(0.25)) / 107,
                                    abs=1e-4)
  assert r["released_psnr"] < r["psnr"]
  # Flat images: every contrast-structure term is 1, MS-SSIM = SSIM ** 0.1333 (coarsest).
  c1 = (0.01 * 255) ** 2
  s5, s41 = (flat_ssim(v * 255, 0.4 * 255, c1) for v in (0.5, 0.41))
  assert r["released_ms_ssim"] == pytest.approx(
      (s5 ** 0.1333 + ((s5 + s41) / 2) ** 0.1333) / 2, abs=1e-6)
  s9 = flat_ssim(0.9, 0.4, 0.01 ** 2)
  # tf.image.ssim works in float32: on flat images its window sums leave ~1e-4.
  assert r["ssim"] == pytest.approx((75 * s5 + 25 * s41 + 7 * s9) / 107, abs=5e-4)


def test_protocols_match_numpy_with_a_partial_batch():
  rng = np.random.default_rng(0)
  dslr = ndimage.gaussian_filter(rng.uniform(0, 1, (7, 40, 40, 3)), (0, 1.5, 1.5, 0))
  dslr = dslr.astype(np.float32)
  phone = np.clip(dslr * 0.8 + rng.normal(0, 0.05, dslr.shape), 0, 1).astype(np.float32)
  overshoot = lambda x: x * 1.3 - 0.1  # noqa: E731  (leaves [0, 1]: clipping matters)
  batches = [(phone[i:i + 3], dslr[i:i + 3]) for i in (0, 3, 6)]  # 3 + 3 + 1
  results = evaluation.evaluate(batches, {"overshoot": overshoot}, full_batch=3)
  assert list(results) == [evaluation.BASELINE, "overshoot"]
  for label, images in ((evaluation.BASELINE, phone), ("overshoot", overshoot(phone))):
    r = results[label]
    assert (r["patches"], r["full_batches"]) == (7, 2)
    full = [(images[i:i + 3], dslr[i:i + 3]) for i in (0, 3)]
    assert r["released_psnr"] == pytest.approx(np.mean([np_psnr(x, y) for x, y in full]),
                                               abs=1e-4)
    assert r["released_ms_ssim"] == pytest.approx(
        np.mean([np_released_ms_ssim(x, y) for x, y in full]), abs=1e-6)
    clipped = np.clip(images, 0, 1)
    assert r["psnr"] == pytest.approx(np.mean([np_psnr(x, y) for x, y in zip(clipped, dslr)]),
                                      abs=1e-3)
    assert r["ssim"] == pytest.approx(np.mean([np_ssim(x, y) for x, y in zip(clipped, dslr)]),
                                      abs=1e-4)
  assert results["overshoot"]["psnr"] != pytest.approx(results[evaluation.BASELINE]["psnr"])


def test_no_full_batch_leaves_the_released_protocol_empty():
  r = evaluation.evaluate([constant_batch(0.4, [0.5] * 3)], {})[evaluation.BASELINE]
  assert r["released_psnr"] is None and r["released_ms_ssim"] is None
  assert r["psnr"] == pytest.approx(20.0, abs=1e-4)


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
  assert "Released code's protocol" in printed and "Per-patch protocol" in printed
  with open(out_json) as f:
    results = json.load(f)["results"]
  assert list(results) == [evaluation.BASELINE, "g", "again"]
  phone, dslr = folder_patches(root)
  raw = Enhancer(generator).whole(phone)
  enhanced = np.clip(raw, 0, 1)
  for label, images, released in ((evaluation.BASELINE, phone, phone), ("g", enhanced, raw),
                                  ("again", enhanced, raw)):
    assert results[label]["patches"] == 5
    assert results[label]["psnr"] == pytest.approx(
        np.mean([np_psnr(x, y) for x, y in zip(images, dslr)]), abs=1e-3)
    assert results[label]["ssim"] == pytest.approx(
        np.mean([np_ssim(x, y) for x, y in zip(images, dslr)]), abs=1e-4)
    r = results[label]
    assert (r["full_batches"], r["batch_size"]) == (2, 2)  # 5 patches: 2 + 2 (+ 1 dropped)
    full = [(released[i:i + 2], dslr[i:i + 2]) for i in (0, 2)]
    assert r["released_psnr"] == pytest.approx(np.mean([np_psnr(x, y) for x, y in full]),
                                               abs=1e-3)
    lines = [line.split() for line in printed.splitlines() if line.startswith(label)]
    assert [f"{r['released_psnr']:.2f}", f"{r['released_ms_ssim']:.4f}"] in [
        line[-2:] for line in lines]
    assert [f"{r['psnr']:.2f}", f"{r['ssim']:.4f}"] in [line[-2:] for line in lines]
  with open(out_csv) as f:
    rows = list(csv.DictReader(f))
  assert [r["method"] for r in rows] == list(results)
  assert float(rows[1]["psnr"]) == pytest.approx(results["g"]["psnr"], abs=1e-5)


def test_tfrecords_give_the_folder_numbers(dped, tmp_path, capsys):
  root, model, _ = dped
  records = str(tmp_path / "tfr")
  tfrecords.convert_dped_folder(root, "sony", records, patch_size=40)
  out_json = str(tmp_path / "r.json")
  assert cli.main(["dped-tf", "evaluate", "--phone", "sony", "--tfrecord_dir", records,
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
