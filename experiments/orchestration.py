"""The steps the experiment scripts share (`demo.py`, `own_phone.py`, `table2.py`).

Each step is a `dped-tf` subcommand run as a subprocess, as a user would run it, its
output shown and copied into a log; the scripts read what the commands write (TFRecords,
`run.json`, `evaluate --json`), never the library's internals. Scripts run as
`python experiments/NAME.py`, which makes this folder importable for them.
"""

import contextlib
import glob
import json
import os
import subprocess
import sys
import time

import imageio.v3 as iio

from dped_tf import fileio

CLI = [sys.executable, "-m", "dped_tf.cli"]


class Steps:
  """Runs `dped-tf` subcommands into one log file (`log`: a path, or None for none) and
  keeps the wall time of each named stage (`timed`) in `timings`."""

  def __init__(self, log=None):
    self.log = log
    self.timings = {}
    if log:
      os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
      open(log, "w").close()

  def dped_tf(self, *args):
    """Runs `dped-tf ARGS`, its output shown and copied into the log; returns the output;
    exits naming the log when the command fails."""
    line = "$ dped-tf " + " ".join(args)
    print(line, flush=True)
    with open(self.log or os.devnull, "a") as log:
      log.write(line + "\n")
      log.flush()
      proc = subprocess.Popen(CLI + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
      output = []
      for chunk in iter(lambda: proc.stdout.read1(4096), b""):
        text = chunk.decode(errors="replace")
        output.append(text)
        log.write(text)
        sys.stdout.write(text)
        sys.stdout.flush()
      proc.wait()
    if proc.returncode:
      raise SystemExit(f"`dped-tf {args[0]}` failed (exit {proc.returncode})"
                       + (f"; see {self.log}" if self.log else ""))
    return "".join(output)

  @contextlib.contextmanager
  def timed(self, stage):
    start = time.time()
    yield
    self.timings[stage] = time.time() - start

  def sample(self, data, phone, patch_size, train_patches, test_patches, camera=None,
             reuse=False):
    """`dped-tf sample` into `data` (`reuse`: keep a finished one); returns the
    TFRecords folder."""
    records = os.path.join(data, phone, "tfrecords")
    if not (reuse and os.path.isfile(os.path.join(records, "meta.json"))):
      self.dped_tf("sample", "--phone", phone, *(("--camera", camera) if camera else ()),
                   "--dped_dir", data, "--patch_size", str(patch_size), "--train_patches",
                   str(train_patches), "--test_patches", str(test_patches), "--overwrite")
    return records

  def train(self, records, phone, model_dir, *, iterations, batch_size, patch_size,
            learning_rate, preset="demo", vgg_weights="none", precision="float32",
            eval_every=None, extra=()):
    """`dped-tf train` on `records` into `model_dir`, evaluating and checkpointing every
    `eval_every` (default: once, at the end); returns (generator .keras path, the
    command's arguments)."""
    every = str(eval_every or iterations)
    args = ["train", "--phone", phone, "--tfrecord_dir", records, "--model_dir", model_dir,
            "--preset", preset, *extra, "--batch_size", str(batch_size), "--patch_size",
            str(patch_size), "--iterations", str(iterations), "--eval_every", every,
            "--checkpoint_every", every, "--learning_rate", str(learning_rate),
            "--precision", precision, "--vgg_weights", vgg_weights]
    self.dped_tf(*args)
    return os.path.join(model_dir, "generator.keras"), args

  def evaluate(self, phone, models, out_json, *, tfrecords=None, dped_dir=None, csv=None,
               batch_size=None, limit=0):
    """`dped-tf evaluate` of `models` (`--compare` values, LABEL=PATH or PATH, in column
    order) on the test patches of `tfrecords` (else the DPED layout under `dped_dir`), in
    float32; writes `out_json` (and `csv`) and returns its results {label: metrics}, the
    unprocessed phone patches first."""
    source = ("--tfrecord_dir", tfrecords) if tfrecords else ("--dped_dir", dped_dir)
    args = ["evaluate", "--phone", phone, *source, "--precision", "float32",
            "--json", out_json, *(("--csv", csv) if csv else ()),
            *(("--batch_size", str(batch_size)) if batch_size else ()),
            *(("--limit", str(limit)) if limit else ())]
    for spec in models:
      args += ["--compare", spec]
    self.dped_tf(*args)
    with open(out_json) as f:
      return json.load(f)["results"]


def read_run(model_dir):
  """A training run's `run.json` (configuration, warnings, generator source)."""
  with open(os.path.join(model_dir, "run.json")) as f:
    return json.load(f)


def crops_animation(model_dir, path, seconds_per_frame=0.8):
  """The run's before/after crops at each evaluation (`images/step_*.png`) as one looping
  GIF at `path`, written atomically; returns the number of frames (0: no GIF written)."""
  frames = [iio.imread(p) for p in sorted(glob.glob(os.path.join(model_dir, "images",
                                                                  "step_*.png")))]
  if frames:
    fileio.atomic_write_bytes(path, iio.imwrite("<bytes>", frames, extension=".gif",
                                                duration=round(1000 * seconds_per_frame),
                                                loop=0))
  return len(frames)


def write_report(out_dir, text, name="report.md"):
  """Writes `<out_dir>/<name>` atomically and prints it."""
  fileio.atomic_write_bytes(os.path.join(out_dir, name), text.encode())
  print(text)
