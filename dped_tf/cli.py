"""`dped-tf COMMAND [--flags]`: one absl flag set per command, errors as one line.

Each command module defines `define_flags(fv)` and `main(fv, argv)`, and may define
`check(fv, argv)`, run before TensorFlow loads, and the names `dped_tf.cli_help` reads
(usage, example, required flags, deprecated spellings); its one-line help sits here, so
`dped-tf --help` imports nothing heavy. The commands name their heavy modules with
`dped_tf.lazy.lazy_import`, which runs them only when they are used.
"""

import importlib
import logging as std_logging
import os
import re
import sys

from absl import flags
from absl import logging

from dped_tf import __version__
from dped_tf import cli_help
from dped_tf.errors import DpedError
from dped_tf.lazy import import_now
from dped_tf.lazy import is_loaded

# name -> (module, one-line help)
COMMANDS = {
    "prepare": ("dped_tf.commands.prepare",
                "convert a DPED-layout folder (docs/method.md §5) into sharded TFRecords"),
    "train": ("dped_tf.commands.train",
              "train DPED on one phone's patches (resumes from <model_dir>/checkpoints)"),
    "align": ("dped_tf.commands.align",
              "align phone/DSLR photo pairs into DPED-layout patches (SIFT + RANSAC + NCC)"),
    "sample": ("dped_tf.commands.sample",
               "build the embedded sample dataset from scikit-image's real photos"),
    "evaluate": ("dped_tf.commands.evaluate",
                 "Table-2 metrics (PSNR, SSIM, MS-SSIM) of models on a phone's test patches"),
    "enhance": ("dped_tf.commands.enhance",
                "enhance photos of any size with a trained generator (tiled, bounded memory)"),
    "import-checkpoint": ("dped_tf.commands.import_checkpoint",
                          "import the authors' released TF1 generator checkpoint"),
    "export": ("dped_tf.commands.export",
               "export a generator: TF Serving SavedModel, ONNX, OpenVINO, LiteRT"),
    "study": ("dped_tf.commands.study",
              "the paper's pairwise user study as a local web app; --results: Figure 10"),
    "serve": ("dped_tf.commands.serve",
              "a local web page that enhances an uploaded photo (before/after, download)"),
}
# Commands that never import TensorFlow.
WITHOUT_TENSORFLOW = {"study"}


def _usage():
  lines = ["usage: dped-tf COMMAND [--flags]   (dped-tf COMMAND --help for its flags)",
           "       dped-tf --version", "", "commands:"]
  for name, (_, text) in COMMANDS.items():
    lines.append(f"  {name:<18} {text}")
  return "\n".join(lines)


def _import_tensorflow_quietly():
  """TF 2.21 prints C++ start-up lines (oneDNN, CUDA probing) that TF_CPP_MIN_LOG_LEVEL
  does not silence; import it and probe devices with file descriptor 2 muted."""
  saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
  os.dup2(devnull, 2)
  try:
    import_now("tensorflow").config.list_physical_devices("GPU")
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(devnull)


def _quiet_logging(verbosity):
  """absl at `verbosity` (default: warnings and errors), as plain `LEVEL: message` lines;
  absl's "Logging before flag parsing" notice off (the command's flags are parsed)."""
  flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  logging.get_absl_handler().setFormatter(std_logging.Formatter("%(levelname)s: %(message)s"))
  logging.set_verbosity(verbosity)
  std_logging.getLogger("tensorflow").setLevel(
      std_logging.INFO if verbosity >= 0 else std_logging.WARNING)


def main(argv):
  """Runs one command; returns the process exit status."""
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(_usage())
    return 0 if len(argv) >= 2 else 2
  if argv[1] == "--version":
    print(f"dped-tf {__version__}")
    return 0
  name = argv[1]
  if name not in COMMANDS:
    print(f"dped-tf: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
    return 2
  module_name, text = COMMANDS[name]
  module = importlib.import_module(module_name)
  fv = flags.FlagValues()
  module.define_flags(fv)
  args = argv[2:]
  if "--help" in args or "-h" in args or "--helpfull" in args:
    print(cli_help.command_help(name, module, text, fv))
    return 0
  try:
    args, verbosity = cli_help.take_verbosity(args)
    _quiet_logging(verbosity)
    args, notes = cli_help.rename_deprecated(args, getattr(module, "RENAMED", {}))
    for note in notes:
      print(f"dped-tf {name}: {note}", file=sys.stderr)
    try:
      rest = fv([f"dped-tf {name}"] + args)
    except flags.Error as e:
      raise DpedError(str(e)) from None
    cli_help.missing_required(name, module, fv)
    if hasattr(module, "check"):  # before TensorFlow loads: a typo fails at once
      module.check(fv, rest[1:])
  except DpedError as e:
    print(f"dped-tf {name}: error: {e}", file=sys.stderr)
    return 2
  if verbosity >= 0:  # TensorFlow's own C++ notices too
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
  if name not in WITHOUT_TENSORFLOW and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") != "0":
    _import_tensorflow_quietly()
  try:
    return module.main(fv, rest[1:]) or 0
  except DpedError as e:
    print(f"dped-tf {name}: error: {e}", file=sys.stderr)
    return 2
  except OSError as e:  # a full disk, a vanished or unreadable file met mid-run
    where = f"{e.filename}: " if e.filename else ""
    print(f"dped-tf {name}: error: {where}{e.strerror or e}", file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    tf = sys.modules["tensorflow"] if is_loaded("tensorflow") else None
    if tf is None or not isinstance(e, tf.errors.OpError):
      raise
    # TensorFlow's I/O errors (corrupt TFRecords, a full disk under a checkpoint write)
    # carry the graph node after the first line.
    message = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", e.message.strip())
    print(f"dped-tf {name}: error: {message.splitlines()[0]}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"dped-tf {name}: interrupted", file=sys.stderr)
    return 130


def run_main():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  try:
    status = main(sys.argv)
    sys.stdout.flush()
  except BrokenPipeError:  # `dped-tf ... | head`: the reader has gone; say nothing more
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    status = 1
  sys.exit(status)


if __name__ == "__main__":
  run_main()
