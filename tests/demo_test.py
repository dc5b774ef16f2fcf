"""`make demo` (experiments/demo.py) end to end at a tiny size: each stage runs as a
`dped-tf` command, and the report holds what those commands wrote."""

import json
import re

import imageio.v3 as iio
import numpy as np
import pytest

from dped_tf import evaluation
from dped_tf import image_io
from dped_tf.dataloaders import sample
from dped_tf.testing.numpy_metrics import np_psnr


def test_demo_writes_its_report_from_the_commands_outputs(tmp_path, run_experiment):
  out, data = tmp_path / "demo", tmp_path / "data"
  printed = run_experiment("demo", "--out", str(out), "--data", str(data),
                           "--iterations", "2", "--batch_size", "2", "--patch_size", "32",
                           "--train_patches", "16", "--test_patches", "6",
                           "--vgg_weights", "none", "--precision", "float32")
  report = (out / "report.md").read_text()
  assert report in printed
  log = (out / "demo.log").read_text()
  for command in ("sample", "train", "evaluate", "enhance", "export"):
    assert f"$ dped-tf {command} " in log
  assert "--precision float32" in log.split("$ dped-tf train ")[1].splitlines()[0]
  assert "FALLBACK" in report and "precision `float32`" in report
  assert json.loads((out / "model" / "run.json").read_text())["config"]["iterations"] == 2
  # The test patches: evaluate's own JSON, as the report shows it.
  results = json.loads((out / "evaluation.json").read_text())["results"]
  assert list(results) == [evaluation.BASELINE, "generator"]
  base, enhanced = results[evaluation.BASELINE], results["generator"]
  assert base["patches"] == 6
  assert f"| output (enhanced) | {enhanced['psnr']:.2f} | {enhanced['ssim']:.4f} |" in report
  assert f"| output - input | {enhanced['psnr'] - base['psnr']:+.2f} |" in report
  # The held-out full-size photo: the report's PSNR is that of the written PNG.
  after = image_io.read_rgb8(str(out / "enhanced" / "chelsea.png"))
  dslr = sample.load_photo("chelsea.png")
  row = re.search(r"\| chelsea \((\d+)x(\d+)\) \| [\d.]+ / [\d.]+ \| ([\d.]+) / ([\d.]+) \|",
                  report)
  assert (int(row[1]), int(row[2])) == (dslr.shape[1], dslr.shape[0])
  assert float(row[3]) == pytest.approx(np_psnr(after / 255.0, dslr / 255.0), abs=0.006)
  assert (out / "before_after_chelsea.jpg").stat().st_size > 10_000
  assert (out / "saved_model" / "1" / "saved_model.pb").is_file()
  # The crops at each evaluation (every iteration here) as one looping GIF.
  steps = sorted((out / "model" / "images").glob("step_*.png"))
  assert [p.name for p in steps] == ["step_000001.png", "step_000002.png"]
  frames = iio.imread(out / "training_crops.gif")
  assert frames.shape == (2, *iio.imread(steps[0]).shape)
  assert iio.immeta(out / "training_crops.gif")["loop"] == 0
  last = iio.imread(steps[-1]).astype(np.float64)
  assert np.abs(frames[-1] - last).mean() < 8  # a 256-colour palette of the last PNG
  assert "![test crops across training](training_crops.gif)" in report
