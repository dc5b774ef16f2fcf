"""The README's shell commands, as written: every command of its ```sh blocks is either
run here (on the embedded sample or on photo pairs made here, at a tiny size by flags
appended to it, which override the README's own) or, where it needs what this machine
has not (DPED, the authors' download, a cluster, minutes of training), checked against
the CLI: its command, flags and spellings must be current (no deprecation note), and a
`make` target must expand to such a command."""

import importlib
import os
import re
import shlex
import subprocess
import sys

from absl import flags
import cv2
import pytest
from skimage import data as skdata

from dped_tf import cli
from dped_tf import cli_help
from dped_tf.testing.photo_pairs import known_homography
from dped_tf.testing.photo_pairs import synthetic_phone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)

# README command (its start) -> flags that make it tiny here. These commands run, in this
# order, in one folder; the rest are checked against the CLI.
RUN_HERE = {
    "dped-tf sample --phone sony": ["--train_patches", "48", "--test_patches", "8"],
    "dped-tf train --phone sony --preset cpu_sample": [
        "--iterations", "2", "--eval_every", "2", "--checkpoint_every", "2"],
    "dped-tf evaluate --phone sony --model runs/sony_sample": ["--batch_size", "4"],
    "dped-tf enhance data/sample/sony/test_data/full_size_test_images": [],
    "dped-tf align --phone_dir pairs/phone --dslr_dir pairs/dslr": [],
}


def readme_commands():
  """[(line number, command)] of the README's ```sh blocks: continuation lines joined,
  comment lines left out."""
  commands, language, pending = [], None, None
  with open(os.path.join(ROOT, "README.md")) as f:
    for number, line in enumerate(f, start=1):
      text = line.strip()
      if text.startswith("```"):
        language = None if language is not None else text[3:].strip()
        continue
      if language not in ("sh", "bash", "shell") or not text or text.startswith("#"):
        continue
      start, pending = (pending[0], pending[1] + " " + text) if pending else (number, text)
      if pending.endswith("\\"):
        pending = (start, pending[:-1].rstrip())
        continue
      commands.append((start, pending))
      pending = None
  return commands


def words(command):
  return shlex.split(command, comments=True)


def check_against_cli(argv, where):
  """A `dped-tf` command line (without running it): known command, current spellings,
  flags that parse, required flags given."""
  name, args = argv[0], argv[1:]
  assert name in cli.COMMANDS, f"{where}: no command {name}"
  module, fv = command_flags(name)
  args, _ = cli_help.take_verbosity(args)
  _, notes = cli_help.rename_deprecated(args, getattr(module, "RENAMED", {}))
  assert not notes, f"{where}: {notes}"
  fv([f"dped-tf {name}"] + args)
  cli_help.missing_required(name, module, fv)


def command_flags(name):
  module = importlib.import_module(cli.COMMANDS[name][0])
  fv = flags.FlagValues()
  module.define_flags(fv)
  return module, fv


def check_make(argv, where):
  """`make TARGET VAR=...`: the target exists and its `dped-tf` or experiment line is
  current."""
  dry = subprocess.run(["make", "-n", *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                       timeout=60)
  assert dry.returncode == 0, f"{where}: {dry.stderr}"
  for line in re.sub(r"\\\n", " ", dry.stdout).splitlines():
    if "dped-tf" not in line and "experiments/" not in line:
      continue
    tokens = words(line)
    if tokens and tokens[0].endswith("/dped-tf"):
      check_against_cli(tokens[1:], f"{where} ({line})")
    elif len(tokens) > 1 and tokens[1].startswith("experiments/"):
      check_script(tokens[1:], f"{where} ({line})")


def check_script(argv, where):
  """`python experiments/X.py --flags`: every flag given is one `--help` lists."""
  shown = subprocess.run([sys.executable, os.path.join(ROOT, argv[0]), "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
  assert shown.returncode == 0, f"{where}: {shown.stderr}"
  for arg in argv[1:]:
    if arg.startswith("--"):
      assert arg.split("=")[0] in shown.stdout, f"{where}: {arg} not in --help"


def photo_pairs(root):
  """Two phone/DSLR pairs of real photos for `dped-tf align`."""
  for name, dslr in (("coffee", skdata.coffee()), ("chelsea", skdata.chelsea())):
    phone = synthetic_phone(dslr[..., ::-1], known_homography(), (dslr.shape[1] * 4 // 5,
                                                                 dslr.shape[0] * 4 // 5))
    for folder, image in (("phone", phone), ("dslr", dslr[..., ::-1])):
      os.makedirs(os.path.join(root, "pairs", folder), exist_ok=True)
      cv2.imwrite(os.path.join(root, "pairs", folder, f"{name}.png"), image)


def test_every_readme_command_is_known():
  commands = readme_commands()
  assert len(commands) >= 20
  for start in RUN_HERE:
    assert any(c.startswith(start) for _, c in commands), f"README lost: {start}"
  for number, command in commands:
    where = f"README.md:{number}"
    argv = words(command)
    if argv[0] in ("dped-tf", ".venv/bin/dped-tf"):
      check_against_cli(argv[1:], where)
    elif argv[0] == "make":
      check_make(argv, where)
    elif argv[0] == ".venv/bin/python" and argv[1].startswith("experiments/"):
      check_script(argv[1:], where)
    else:
      pytest.fail(f"{where}: a command this test does not know how to check: {command}")


def test_readme_commands_run_as_written(tmp_path):
  photo_pairs(str(tmp_path))
  env = {**os.environ, "PATH": BIN + os.pathsep + os.environ["PATH"],
         "TF_CPP_MIN_LOG_LEVEL": "3"}
  ran = []
  for number, command in readme_commands():
    extra = next((flags for start, flags in RUN_HERE.items() if command.startswith(start)),
                 None)
    if extra is None:
      continue
    argv = words(command) + extra
    result = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"README.md:{number}: {shlex.join(argv)}\n{result.stderr}"
    ran.append((argv[1], result.stdout))
  assert [name for name, _ in ran] == ["sample", "train", "evaluate", "enhance", "align"]
  printed = dict(ran)
  readme = open(os.path.join(ROOT, "README.md")).read()
  # What `sample` tells a newcomer to run next is what the README says.
  for line in printed["sample"].splitlines():
    if line.startswith("  dped-tf "):
      assert re.sub(r"\s+", " ", line.strip()) in re.sub(r"\s*\\\n\s*", " ", readme), line
  assert (tmp_path / "runs" / "sony_sample" / "generator.keras").is_file()
  assert "phone (unprocessed)" in printed["evaluate"]
  assert list((tmp_path / "runs" / "sony_sample" / "enhanced").iterdir())
  assert (tmp_path / "data" / "own" / "myphone" / "align_report.json").is_file()
