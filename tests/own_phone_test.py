"""Train for your own phone, end to end on photos the test makes: a new camera name whose
HEIC photos come from a simulated camera that is none of the DPED phones; align, prepare,
train two steps from an imported TF1 checkpoint (`--init_from`), evaluate, enhance."""

import json
import os

import cv2
from dped_tf.testing.authors_graph import write_authors_checkpoint
import keras
import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
from skimage import data as skdata

from dped_tf import cli
from dped_tf import evaluation
from dped_tf.dataloaders import camera_sim
from dped_tf.dataloaders import sample
from dped_tf.modeling.factory import load_generator

PHONE, PATCH, LR = "my-phone_2", 32, 5e-4


def dped_tf(*args):
  return cli.main(["dped-tf", *args])


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
  """DSLR photos (PNG) and the same scenes through the `midrange` camera, 0.8x smaller,
  saved as HEIC as a phone does; two pairs for training, one for testing."""
  assert "midrange" not in ("iphone", "blackberry", "sony")
  profile = camera_sim.profile_for(PHONE, "midrange")
  root = tmp_path_factory.mktemp("photos")
  (root / "phone").mkdir()
  (root / "dslr").mkdir()
  rows = ["phone,dslr,split"]
  for seed, (name, split) in enumerate((("coffee", "train"), ("astronaut", "train"),
                                        ("chelsea", "test"))):
    dslr = getattr(skdata, name)()
    phone = sample.phone_view(dslr, profile, seed)
    phone = cv2.resize(phone, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_AREA)
    Image.fromarray(dslr).save(root / "dslr" / f"{name}.png")
    Image.fromarray(phone).save(root / "phone" / f"{name}.heic", "HEIF", quality=90)
    rows.append(f"phone/{name}.heic,dslr/{name}.png,{split}")
  (root / "pairs.csv").write_text("\n".join(rows) + "\n")
  return root


def test_new_phone_from_heic_pairs_to_enhanced_photos(photos, tmp_path, capsys):
  out = tmp_path / "data"
  # 1. align: HEIC phone photos against PNG DSLR photos; patches only (prepare follows).
  assert dped_tf("align", f"--pairs_csv={photos / 'pairs.csv'}", f"--phone={PHONE}",
                 f"--dped_dir={out}", f"--patch_size={PATCH}", "--nowrite_tfrecords") == 0
  report = json.loads((out / PHONE / "align_report.json").read_text())
  assert all(p["status"] == "ok" and p["kept"] > 0 for p in report["photos"])
  assert all(p["scale"] == pytest.approx(1.25, abs=0.05) for p in report["photos"])
  assert report["patches"]["train"] > 20 and report["patches"]["test"] > 4
  # 2. prepare: the DPED layout under the new name -> TFRecords.
  records = out / PHONE / "tfrecords"
  assert dped_tf("prepare", f"--phone={PHONE}", f"--dped_dir={out}", f"--tfrecord_dir={records}",
                 f"--patch_size={PATCH}") == 0
  # 3. import-checkpoint: a TF1 checkpoint written the authors' way -> .keras.
  prefix = str(tmp_path / "released" / "iphone_orig")
  image = skdata.chelsea()[:64, :64].astype(np.float32) / 255
  write_authors_checkpoint(prefix, image)
  imported = str(tmp_path / "imported.keras")
  assert dped_tf("import-checkpoint", f"--checkpoint={prefix}", f"--out={imported}") == 0
  # 4. train two steps from it.
  run = tmp_path / "run"
  assert dped_tf("train", f"--phone={PHONE}", f"--tfrecord_dir={records}", f"--model_dir={run}",
                 f"--init_from={imported}", "--iterations=2", "--batch_size=2",
                 f"--patch_size={PATCH}", "--eval_every=2", "--checkpoint_every=2",
                 "--vgg_weights=none", f"--learning_rate={LR}") == 0
  source = json.loads((run / "run.json").read_text())["generator_source"]
  assert source["init_from"]["path"] == imported and source["init_from"]["used"]
  start, trained = load_generator(imported), load_generator(str(run / "generator.keras"))
  moved = [np.abs(a - b).max() for a, b in zip(start.get_weights(), trained.get_weights())]
  assert 0 < max(moved) <= 2 * LR * 1.01  # two Adam steps of at most ~LR from the import
  # 5. evaluate: both protocols, the baseline by numpy from the test patches.
  capsys.readouterr()
  out_json = tmp_path / "eval.json"
  assert dped_tf("evaluate", f"--phone={PHONE}", f"--tfrecord_dir={records}",
                 f"--model={run / 'generator.keras'}", f"--compare=imported={imported}",
                 "--batch_size=4", f"--json={out_json}") == 0
  assert "Released code's protocol" in capsys.readouterr().out
  results = json.loads(out_json.read_text())["results"]
  test_dir = out / PHONE / "test_data" / "patches"
  count = report["patches"]["test"]
  phone, dslr = (np.stack([np.asarray(Image.open(test_dir / d / f"{i}.jpg"), np.float64) / 255
                           for i in range(count)]) for d in (PHONE, "canon"))
  mse = np.mean((phone - dslr) ** 2, axis=(1, 2, 3))
  base = results["phone (unprocessed)"]
  assert (base["patches"], base["full_batches"]) == (count, count // 4)
  assert base["psnr"] == pytest.approx(np.mean(-10 * np.log10(mse)), abs=0.3)  # decoders differ
  full = mse[:count // 4 * 4].reshape(-1, 4).mean(axis=1)
  assert base["released_psnr"] == pytest.approx(np.mean(-10 * np.log10(full)), abs=0.3)
  assert set(results) == {"phone (unprocessed)", "generator", "imported"}
  # 6. enhance the test photo as the phone saved it: HEIC in, HEIC out, upright.
  heic = photos / "phone" / "chelsea.heic"
  assert dped_tf("enhance", str(heic), f"--model={run / 'generator.keras'}",
                 f"--out={tmp_path / 'enhanced'}", "--precision=float32") == 0
  assert dped_tf("enhance", str(heic), f"--model={run / 'generator.keras'}",
                 f"--out={tmp_path / 'enhanced'}", "--precision=float32", "--ext=png") == 0
  with Image.open(heic) as im:
    before = np.asarray(im.convert("RGB"), np.float32) / 255
  keras.mixed_precision.set_global_policy("float32")
  expected = np.clip(trained(tf.constant(before[None]), training=False).numpy()[0], 0, 1)
  with Image.open(tmp_path / "enhanced" / "chelsea.heic") as im:
    assert im.format == "HEIF" and im.size == (before.shape[1], before.shape[0])
  got = np.asarray(Image.open(tmp_path / "enhanced" / "chelsea.png"), np.float32) / 255
  assert np.abs(got - expected).max() <= 0.51 / 255
  assert not os.path.exists(tmp_path / "enhanced" / "chelsea.jpg")


def test_own_phone_experiment_compares_scratch_and_fine_tuned(tmp_path, run_experiment):
  """experiments/own_phone.py at a tiny budget: the sony model, myphone from scratch and
  fine-tuned from it, evaluated together on myphone's test patches."""
  out = tmp_path / "own_phone"
  run_experiment("own_phone", "--out", str(out), "--iterations", "2", "--batch_size", "2",
                 "--patch_size", "32", "--train_patches", "16", "--test_patches", "6")
  sony = str(out / "sony" / "generator.keras")
  finetuned = json.loads((out / "myphone_finetuned" / "run.json").read_text())
  assert finetuned["generator_source"]["init_from"]["path"] == sony
  assert finetuned["config"]["phone"] == "myphone"
  results = json.loads((out / "evaluation.json").read_text())["results"]
  assert list(results) == ["phone (unprocessed)", "sony model, not fine-tuned",
                           "myphone from scratch", "myphone fine-tuned from sony"]
  assert all(r["patches"] == 6 for r in results.values())
  report = (out / "report.md").read_text()
  for line in evaluation.format_markdown(results).splitlines():
    assert line in report
