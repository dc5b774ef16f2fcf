"""One CLI vocabulary, help that teaches, old spellings that still work, mistakes that
fail before TensorFlow loads, and quiet output at the default verbosity."""

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys

from absl import flags
from PIL import Image
import pytest
from skimage import data as skdata

from dped_tf import cli
from dped_tf import cli_help
from dped_tf.testing.models import random_weights_model


def command_flags(name):
  module = importlib.import_module(cli.COMMANDS[name][0])
  fv = flags.FlagValues()
  module.define_flags(fv)
  return module, fv


def clean_env():
  """The user's environment: no TF_CPP_MIN_LOG_LEVEL of the test runner's."""
  return {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def dped_tf(*args, cwd=None):
  return subprocess.run([sys.executable, "-m", "dped_tf.cli", *args], capture_output=True,
                        text=True, env=clean_env(), cwd=cwd, timeout=300)


@pytest.mark.parametrize("name", list(cli.COMMANDS))
def test_help_shows_usage_example_required_flags_and_plain_defaults(name, capsys):
  assert cli.main(["dped-tf", name, "--help"]) == 0
  text = capsys.readouterr().out
  module, fv = command_flags(name)
  lines = text.splitlines()
  assert lines[0].startswith(f"usage: dped-tf {name} ") and lines[0].endswith("[--flags]")
  example = lines[lines.index("example:") + 1]
  assert example.strip().startswith(f"dped-tf {name} ")
  for flag in fv:
    entry = text[text.index(f"  --{flag}=" if not fv[flag].boolean else f"  --[no]{flag}"):]
    entry = entry[:entry.index("\n  -", 1) if "\n  -" in entry[1:] else len(entry)]
    assert ("(required)" in entry) == (flag in getattr(module, "REQUIRED", ())), entry
    if fv[flag].boolean:
      assert f"default: {'true' if fv[flag].default else 'false'}" in entry
  for required in getattr(module, "REQUIRED", ()):
    assert f"--{required}" in lines[0]
  assert "default: '" not in text and "<" not in lines[0]


def test_usage_names_positional_inputs_and_version_is_the_package_version(capsys):
  assert cli.main(["dped-tf", "enhance", "--help"]) == 0
  assert capsys.readouterr().out.startswith(
      "usage: dped-tf enhance PHOTO_OR_FOLDER... --model MODEL --out FOLDER [--flags]")
  assert cli.main(["dped-tf", "--version"]) == 0
  assert capsys.readouterr().out == f"dped-tf {importlib.metadata.version('dped_tf')}\n"


def test_one_vocabulary_across_commands():
  every = {name: command_flags(name)[1] for name in cli.COMMANDS}
  for name, fv in every.items():
    assert "tfrecords" not in fv, name      # the folder is --tfrecord_dir everywhere
    if "model" in fv:                        # always a model to load
      assert ".keras" in fv["model"].help and "dped:" in fv["model"].help, name
    if "out" in fv:                          # never a dataset or TFRecords root
      assert "DPED layout" not in fv["out"].help and "TFRecords" not in fv["out"].help, name
  assert "architecture" in every["train"] and "model" not in every["train"]
  for name in ("train", "evaluate", "prepare", "sample", "align"):
    assert "dped_dir" in every[name], name
  for name in ("train", "evaluate", "prepare"):
    assert "tfrecord_dir" in every[name], name


def test_old_spellings_are_renamed_with_one_note_each():
  renamed = {"out": "dped_dir", "tfrecords": "write_tfrecords"}
  args, notes = cli_help.rename_deprecated(
      ["--out=a", "--notfrecords", "--out", "b", "--phone=x", "--", "--out=beam"], renamed)
  assert args == ["--dped_dir=a", "--nowrite_tfrecords", "--dped_dir", "b", "--phone=x", "--",
                  "--out=beam"]
  assert notes == ["--out is deprecated; use --dped_dir",
                   "--notfrecords is deprecated; use --nowrite_tfrecords"]


def test_an_old_spelling_still_runs_the_command(tmp_path):
  result = dped_tf("sample", "--phone", "sony", "--out", str(tmp_path / "s"), "--patch_size",
                   "32", "--train_patches", "4", "--test_patches", "2")
  assert result.returncode == 0, result.stderr
  assert result.stderr == "dped-tf sample: --out is deprecated; use --dped_dir\n"
  meta = json.loads((tmp_path / "s" / "sony" / "tfrecords" / "meta.json").read_text())
  assert meta["train"]["pairs"] == 4 and meta["test"]["pairs"] == 2


def test_mistakes_fail_in_one_line_before_tensorflow_loads(tmp_path):
  """Each case in one process, in order; TensorFlow (its `tensorflow.python`, not a lazy
  placeholder) must still be unloaded after all of them."""
  missing = str(tmp_path / "nothere")
  cases = [
      (["enhance", "nothere.jpg", "--model", "dped:sony", "--out", "o"],
       "nothere.jpg: no such file or folder"),
      (["enhance", "--model", "dped:sony", "--out", "o"], "no input photos or folders given"),
      (["enhance", ".", "--model", "dped:nokia", "--out", "o"], "dped:nokia: no such released"),
      (["export", "--out", "o"], "--model is required; usage: dped-tf export --model MODEL"),
      (["export", "--model", "m.keras", "--out", "o"], "m.keras: model file not found"),
      (["evaluate", "--phone", "sony", "--model", "m.keras"], "m.keras: model file not found"),
      (["serve", "--model", "m.keras"], "m.keras: model file not found"),
      (["train", "--phone", "sony", "--dped_dir", missing], "dped-tf sample --phone sony"),
      (["train", "--phone", "sony", "--dped_dir", missing, "--architecture", "srcnn",
        "--init", "identity"], "dataset folder not found"),
      (["prepare", "--phone", "sony", "--dped_dir", missing], "dataset folder not found"),
      (["align", "--phone_dir", missing, "--dslr_dir", missing, "--phone", "p",
        "--dped_dir", "o"], "photo folder not found"),
      (["import-checkpoint", "--checkpoint", missing, "--out", "o.keras"],
       "not a readable TF checkpoint"),
      (["sample", "--phone", "sony", "--patch_size", "4"], "--patch_size"),
  ]
  script = (
      "import json, sys, time\n"
      "from dped_tf import cli\n"
      "out = []\n"
      "for args, _ in json.loads(sys.argv[1]):\n"
      "  start = time.monotonic()\n"
      "  rc = cli.main(['dped-tf', *args])\n"
      "  sys.stderr.write('|\\n')\n"
      "  out.append((rc, time.monotonic() - start))\n"
      "print(json.dumps({'results': out, 'tensorflow': 'tensorflow.python' in sys.modules}))\n")
  result = subprocess.run([sys.executable, "-c", script, json.dumps(cases)], cwd=tmp_path,
                          capture_output=True, text=True, env=clean_env(), timeout=120)
  report = json.loads(result.stdout.splitlines()[-1])
  assert report["tensorflow"] is False, result.stderr
  errors = result.stderr.split("|\n")[:-1]
  for (args, needle), (rc, _), error in zip(cases, report["results"], errors):
    assert rc == 2, (args, error)
    assert error.count("\n") == 1 and error.startswith(f"dped-tf {args[0]}: error: "), error
    assert needle in error, (needle, error)
  assert not os.path.exists(tmp_path / "o")   # nothing made for a command that failed


@pytest.fixture(scope="module")
def photo_and_model(tmp_path_factory):
  root = tmp_path_factory.mktemp("quiet")
  Image.fromarray(skdata.astronaut()[:96, :128]).save(root / "astronaut.png")
  model = random_weights_model("dped")
  model.save(root / "g.keras")
  return root


def test_default_output_is_quiet_and_verbosity_shows_notices(photo_and_model):
  root = photo_and_model
  quiet = dped_tf("enhance", "astronaut.png", "--model", "g.keras", "--out", "quiet",
                  cwd=root)
  assert quiet.returncode == 0, quiet.stderr
  assert quiet.stderr == "", quiet.stderr          # no TensorFlow or absl notices
  assert "astronaut.png -> quiet/astronaut.png" in quiet.stdout
  loud = dped_tf("enhance", "astronaut.png", "--model", "g.keras", "--out", "loud", "-v",
                 cwd=root)
  assert loud.returncode == 0, loud.stderr
  assert loud.stderr.strip(), "-v shows TensorFlow's notices"
  assert "-v" not in loud.stdout and (root / "loud" / "astronaut.png").is_file()
