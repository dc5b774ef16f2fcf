"""The paper, runnable: the Figure-6 script, the Table-2 baselines (train a few steps,
evaluate by the same protocol, `experiments/table2.py`), the identity start, and the
loss-ablation notebook executed headless with a tiny budget."""

import csv
import importlib.util
import json
import math
import os

import cv2
import numpy as np
import pytest

from dped_tf import configs
from dped_tf import evaluation
from dped_tf.training import loop
from dped_tf.testing.data import write_tiny_records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "experiments",
                                                                   f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_figure6_curves(tmp_path):
  fig6 = load_script("figure6_color_vs_mse")
  fig6.main(["--out", str(tmp_path), "--crops", "60"])
  with open(tmp_path / "figure6.csv") as f:
    rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
  assert [r["n"] for r in rows] == list(range(11))
  assert rows[0]["color"] == 0.0 and rows[0]["mse"] == 0.0
  for key in ("mse", "color"):
    values = [r[key] for r in rows]
    assert all(b > a for a, b in zip(values, values[1:])), (key, values)
  # The color loss is the blur-insensitive one: far below MSE for small shifts.
  assert all(r["color"] < r["mse"] for r in rows[1:])
  assert os.path.getsize(tmp_path / "figure6.png") > 1000
  assert "n = 3-5" in (tmp_path / "figure6.txt").read_text()


@pytest.fixture(scope="module")
def tiny_records(tmp_path_factory):
  return write_tiny_records(str(tmp_path_factory.mktemp("dped")), train=12, test=6, patch=32)


def _train(records, model_dir, **kwargs):
  cfg = configs.TrainConfig(batch_size=2, patch_size=32, iterations=2, eval_every=2,
                            checkpoint_every=2, vgg_weights="none", **kwargs)
  metrics = loop.train(cfg, records, model_dir)
  assert all(math.isfinite(v) for v in metrics.values())
  return os.path.join(model_dir, "generator.keras")


def test_baselines_train_and_evaluate(tiny_records, tmp_path, run_experiment):
  from dped_tf import cli  # pylint: disable=import-outside-toplevel
  from dped_tf.modeling.baselines import SRCNN  # pylint: disable=import-outside-toplevel
  # Dong et al. through the command line: --model srcnn picks the srcnn (MSE) preset.
  srcnn_dir = str(tmp_path / "srcnn")
  assert cli.main(["dped-tf", "train", "--phone", "sony", "--tfrecord_dir", tiny_records,
                   "--model_dir", srcnn_dir, "--architecture", "srcnn", "--batch_size", "2",
                   "--patch_size", "32", "--iterations", "2", "--eval_every", "2",
                   "--vgg_weights", "none"]) == 0
  with open(os.path.join(srcnn_dir, "run.json")) as f:
    run = json.load(f)["config"]
  assert run["architecture"] == "srcnn" and run["loss"] == {
      **json.loads(json.dumps(vars(configs.LOSS_PRESETS["srcnn"])))}
  # Johnson et al.: the generator under the VGG content loss only.
  johnson = _train(tiny_records, str(tmp_path / "johnson"), architecture="johnson",
                   loss=configs.LOSS_PRESETS["johnson"])
  out = tmp_path / "table"
  printed = run_experiment("table2", "--phone", "sony", "--tfrecord_dir", tiny_records,
                           "--out", str(out), "--batch_size", "3",
                           "--model", f"Dong et al.={srcnn_dir}/generator.keras",
                           "--model", f"Johnson et al.={johnson}")
  results = json.loads((out / "table2.json").read_text())["results"]
  assert list(results) == ["phone (unprocessed)", "Dong et al.", "Johnson et al."]
  for r in results.values():
    assert r["patches"] == 6 and r["full_batches"] == 2
    assert all(math.isfinite(r[m]) for m in evaluation.METRICS)
  table = (out / "table2.md").read_text()
  assert table.split("\n\n", 1)[1] in printed
  with open(out / "table2.csv") as f:
    rows = list(csv.DictReader(f))
  assert [r["method"] for r in rows] == list(results)
  dong = results["Dong et al."]
  # The released protocol's numbers, then the published row beside them; per patch apart.
  assert ("| Sony (this run) | " in table and f"{dong['released_psnr']:.2f} / "
          f"{dong['released_ms_ssim']:.4f}" in table.split("(published)")[0])
  assert "| Sony (published) | - | 21.21 / 0.9382 | 21.33 / 0.9434 |" in table
  assert f"{dong['psnr']:.2f} / {dong['ssim']:.4f}" in table.split("Per-patch")[1]
  import keras  # pylint: disable=import-outside-toplevel
  assert isinstance(keras.models.load_model(f"{srcnn_dir}/generator.keras", compile=False),
                    SRCNN)


def test_identity_start_reproduces_the_input():
  from dped_tf import metrics  # pylint: disable=import-outside-toplevel
  from dped_tf.modeling.generator import Generator  # pylint: disable=import-outside-toplevel
  from dped_tf.modeling.warm_start import identity_init  # pylint: disable=import-outside-toplevel
  from skimage import data as skdata  # pylint: disable=import-outside-toplevel
  image = skdata.astronaut()[None, 100:228, 150:278].astype(np.float32) / 255.0
  reference, identity = Generator(), Generator()
  for g in (reference, identity):
    g.build((None, None, None, 3))
  identity_init(identity)
  near = float(metrics.psnr(identity(image), image)[0])
  far = float(metrics.psnr(reference(image), image)[0])
  assert near > 20.0 and near > far + 8.0, (near, far)
  with pytest.raises(ValueError, match="srcnn"):
    configs.TrainConfig(architecture="srcnn", init="identity")


def test_loss_ablation_notebook(tmp_path):
  import nbclient  # pylint: disable=import-outside-toplevel
  import nbformat  # pylint: disable=import-outside-toplevel
  path = os.path.join(ROOT, "notebooks", "loss_ablations.ipynb")
  nb = nbformat.read(path, as_version=4)
  # Committed without outputs.
  assert all(not c.get("outputs") and c.get("execution_count") is None
             for c in nb.cells if c.cell_type == "code")
  params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(params) == 1
  params[0].source += (f"\nITERATIONS = 2\nBATCH_SIZE = 2\nPATCH_SIZE = 32\n"
                       f"TRAIN_PATCHES = 16\nTEST_PATCHES = 6\nTEXTURE_WARMUP = 1\n"
                       f"PRECISION = 'float32'\nVGG_WEIGHTS = 'none'\nOUT = {str(tmp_path)!r}\n")
  nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}}).execute()
  with open(tmp_path / "ablations.json") as f:
    results = json.load(f)["results"]
  rows = [k for k in results if k != evaluation.BASELINE]
  assert rows == ["color + content + texture", "content + texture", "MSE + texture", "MSE"]
  for r in results.values():  # 6 test patches: no full batch of 50 for the released protocol
    assert math.isfinite(r["psnr"]) and math.isfinite(r["ssim"]) and r["full_batches"] == 0
    assert r["released_psnr"] is None and r["released_ms_ssim"] is None
  text = json.dumps([c.get("outputs") for c in nb.cells])
  assert "| MSE + texture |" in text and "image/png" in text
  assert os.path.isfile(tmp_path / "grid.png")
  # The training curves: every variant's logged terms against the iteration.
  assert text.count("image/png") >= 2 and cv2.imread(str(tmp_path / "curves.png")) is not None
  with open(tmp_path / "curves.json") as f:
    curves = json.load(f)
  assert list(curves) == rows
  for label, c in curves.items():
    assert [step for step, _ in c["test/psnr"]] == [1, 2], label
    on = {"color + content + texture": ("color", "content", "texture", "tv"),
          "content + texture": ("content", "texture", "tv"),
          "MSE + texture": ("texture", "mse"), "MSE": ("mse",)}[label]
    for term in ("color", "content", "texture", "tv", "mse"):  # weight 0: not logged
      assert bool(c.get(f"train/{term}")) == bool(c.get(f"test/{term}")) == (term in on), (
          label, term)
    assert c["train/psnr"] and c["test/psnr"], label
    assert all(math.isfinite(v) for points in c.values() for _, v in points)
