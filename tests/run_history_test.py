"""What a run leaves and says (docs/method.md §4): its history across resumed segments, no
lock or empty folder after a failed start, the unprocessed baseline beside its metrics,
no value for a loss term that is off; and the sample found by `train` and `evaluate`."""

import dataclasses
import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from dped_tf import config_flags, configs, fileio
from dped_tf.commands import sample as sample_command
from dped_tf.dataloaders import locate, tfrecords
from dped_tf.errors import DpedError
from dped_tf.testing.data import write_dped_folder, write_tiny_records
from dped_tf.testing.numpy_metrics import np_psnr
from dped_tf.training import loop

PATCH, BATCH = 32, 2


@pytest.fixture(scope="module")
def records(tmp_path_factory):
  return write_tiny_records(str(tmp_path_factory.mktemp("dped")), train=6, test=3, patch=PATCH)


def tiny(**overrides):
  kw = dict(batch_size=BATCH, patch_size=PATCH, vgg_weights="none", shuffle_buffer=4,
            iterations=1, eval_every=1)
  return configs.TrainConfig(**{**kw, **overrides})


def read_json(path):
  with open(path) as f:
    return json.load(f)


def test_resuming_with_other_settings_is_refused_or_appended(records, tmp_path):
  run = str(tmp_path / "run")
  demo = configs.LOSS_PRESETS["demo"]   # no VGG-19 or critic pass: a fast tiny run
  other = dataclasses.replace(demo, w_mse=100.0)
  loop.train(tiny(loss=demo), records, run, progress=False)
  changed = tiny(iterations=2, init="identity", loss=other)
  with pytest.raises(DpedError) as e:
    loop.train(changed, records, run, progress=False)
  message = str(e.value)
  assert "\n" not in message and message.startswith(run) and "--new_segment" in message
  assert "init 'reference' -> 'identity'" in message and "w_mse 1000.0 -> 100.0" in message
  assert "iterations" not in message  # how long a run goes is no other setting
  assert read_json(os.path.join(run, "run.json"))["config"]["init"] == "reference"
  loop.train(changed, records, run, progress=False, new_segment=True)
  record = read_json(os.path.join(run, "run.json"))
  segments = record["segments"]
  assert [s["start_step"] for s in segments] == [0, 1]
  assert [s["config"]["init"] for s in segments] == ["reference", "identity"]
  assert [s["config"]["loss"]["w_mse"] for s in segments] == [1000.0, 100.0]
  assert segments[0]["changes"] == [] and len(segments[1]["changes"]) == 2
  assert {k: record[k] for k in segments[1]} == segments[1]  # the latest at the top
  with open(os.path.join(run, "summary.md")) as f:
    assert "Settings changed at step 1 (--new_segment)" in f.read()


def test_a_failed_start_leaves_no_lock_and_no_empty_folder(records, tmp_path):
  model_dir = tmp_path / "runs" / "sony"
  with pytest.raises(DpedError, match="VGG-19 weights file not found"):
    loop.train(tiny(vgg_weights=str(tmp_path / "vgg.h5")), records, str(model_dir))
  assert not (tmp_path / "runs").exists()
  with pytest.raises(DpedError, match="patches are 32 px"):   # in run_training
    loop.train(tiny(patch_size=16), records, str(model_dir))
  assert not (tmp_path / "runs").exists()
  mine = tmp_path / "mine"
  mine.mkdir()   # a folder the user made stays
  with pytest.raises(DpedError):
    loop.train(tiny(vgg_weights=str(tmp_path / "vgg.h5")), records, str(mine))
  assert mine.is_dir() and not os.listdir(mine)


def test_patch_size_error_names_the_data_and_the_remedy(records):
  meta = tfrecords.read_meta(records)
  message = str(loop.patch_size_error(records, meta, 64))
  assert "patches are 32 px, --patch_size is 64" in message
  assert "--patch_size 32" in message and "dped-tf prepare --patch_size 64" in message
  sample = str(loop.patch_size_error(records, {**meta, "sample": "x"}, 64))
  assert "dped-tf sample --phone sony --patch_size 64 --overwrite" in sample


def test_terms_of_weight_zero_are_not_logged_and_the_baseline_is(records, tmp_path, capsys,
                                                                caplog):
  run = tmp_path / "run"
  loss = configs.LOSS_PRESETS["demo"]   # color and MSE only
  loop.train(tiny(loss=loss, iterations=2, eval_every=2, log_every=1), records, str(run),
             progress=False)
  out = capsys.readouterr().out
  progress = [l for l in out.splitlines() if l.startswith("step ")]
  assert len(progress) == 2
  for line in [*progress, *(l for l in out.splitlines() if "test_psnr" in l)]:
    assert "color" in line and "mse" in line
    for off in ("content", "texture", "tv", "d_loss", "d_accuracy"):
      assert off not in line, line
  with open(run / "metrics.jsonl") as f:
    logged = json.loads(f.readline())
  assert {"color", "mse", "psnr", "g_loss"} <= set(logged)
  assert not {"content", "texture", "tv", "d_loss", "d_accuracy"} & set(logged)
  # No content term: no VGG-19 weights read, and no warning about random ones.
  record = read_json(run / "run.json")
  assert record["vgg_source"]["name"] == "unused" and record["warnings"] == []
  assert not any("RANDOM" in r.getMessage() for r in caplog.records)
  # The unprocessed phone patches, by an independent formula, beside the model's.
  phone, dslr = zip(*((p.numpy(), d.numpy()) for p, d in
                      tfrecords.make_dataset(records, "test", 1, PATCH, training=False)))
  unprocessed = np.mean([np_psnr(p[0], d[0]) for p, d in zip(phone, dslr)])
  with open(run / "summary.md") as f:
    row = next(l for l in f if l.startswith("| psnr |"))
  assert row == f"| psnr | {logged['psnr']:.5g} | {unprocessed:.5g} |\n"
  assert f"Generator: {run / 'generator.keras'}" in out
  assert f"Summary: {run / 'summary.md'}" in out
  assert f"phone unprocessed: PSNR {unprocessed:.2f} dB" in out


def test_presets_that_size_the_run_yield_to_flags():
  def parse(*args):
    fv = flags.FlagValues()
    configs.define_phone_flag(fv, "phone")
    config_flags.define_train_flags(fv)
    fv(["train", "--phone", "sony", *args])
    return config_flags.train_config_from_flags(fv, phone="sony")
  cfg = parse("--preset", "cpu_sample")
  assert cfg.loss == configs.LOSS_PRESETS["demo"] and cfg.loss.w_content == 0
  assert (cfg.init, cfg.batch_size, cfg.iterations) == ("identity", 8, 300)
  assert parse("--preset", "cpu_sample", "--batch_size", "4", "--iterations", "9"
               ).batch_size == 4
  assert parse("--preset", "demo").batch_size == 50   # a loss-only preset


def test_the_sample_is_found_or_named(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  error = str(locate.missing_data_error("data/dped", "sony"))
  assert "dped-tf sample --phone sony" in error and "--dped_dir data/sample" in error
  assert locate.dped_dir_for("data/dped", "sony", given=False) == "data/dped"
  os.makedirs("data/sample/sony")
  assert locate.dped_dir_for("data/dped", "sony", given=False) == "data/sample"
  assert locate.dped_dir_for("data/dped", "sony", given=True) == "data/dped"
  assert locate.dped_dir_for("data/dped", "iphone", given=False) == "data/dped"
  steps = sample_command.next_steps("data/sample", "sony")
  assert "dped-tf train --phone sony --preset cpu_sample" in steps
  assert "--dped_dir" not in steps and "--dped_dir x" in sample_command.next_steps("x", "sony")


def test_evaluate_finds_the_sample_and_records_the_model(tmp_path):
  from dped_tf.testing.models import random_weights_model  # pylint: disable=import-outside-toplevel
  root = str(tmp_path / "data" / "sample")
  write_dped_folder(root, train=1, test=4, patch=16)
  tfrecords.convert_dped_folder(root, "sony", os.path.join(root, "sony", "tfrecords"), 16,
                                extra_meta={"sample": "a test sample"})
  model = str(tmp_path / "g.keras")
  random_weights_model().save(model)
  result = subprocess.run(
      [sys.executable, "-m", "dped_tf.cli", "evaluate", "--phone", "sony", "--model", model,
       "--batch_size", "2", "--json", "e.json", "--csv", "e.csv", "--precision", "auto"],
      capture_output=True, text=True, cwd=tmp_path, timeout=240,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(sys.path)})
  assert result.returncode == 0, result.stderr[-3000:]
  assert "EMBEDDED SAMPLE in data/sample" in result.stderr
  assert "the test data is the embedded sample (a test sample)" in result.stderr
  assert "Wrote e.json" in result.stdout and "Wrote e.csv" in result.stdout
  record = read_json(tmp_path / "e.json")
  assert record["source"] == "data/sample" and record["sample"] == "a test sample"
  assert record["models"] == {"g": {"path": model, "sha256": fileio.file_digest(model)}}
  assert record["precision"]["requested"] == "auto"
  assert record["precision"]["used"] in ("float32", "bfloat16")
  assert record["results"]["g"]["patches"] == 4


def test_the_vgg_error_names_the_way_on_and_its_cost(monkeypatch):
  from dped_tf.modeling import vgg  # pylint: disable=import-outside-toplevel

  def offline(weights):
    raise Exception(f"URL fetch failure for {weights}\nmore")  # Keras' own kind
  monkeypatch.setattr(vgg, "_keras_vgg19_weights", offline)
  with pytest.raises(DpedError) as e:
    vgg.load_content_network("imagenet")
  message = str(e.value)
  assert "\n" not in message and "--vgg_weights none" in message
  assert "RANDOM VGG-19" in message and "not the paper's" in message
  assert "--preset cpu_sample" in message
