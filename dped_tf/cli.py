"""`dped-tf COMMAND [--flags]`: one absl flag set per command, errors as one line.

Each command module defines `HELP` (one line), `define_flags(fv)` and `main(fv, argv)`;
TensorFlow is imported by the commands only when they need it, so `--help` is fast.
"""

import importlib
import os
import sys

from absl import flags
from absl import logging

from dped_tf.errors import DpedError

COMMANDS = {
    "prepare": "dped_tf.commands.prepare",
    "train": "dped_tf.commands.train",
}


def _usage():
  lines = ["usage: dped-tf COMMAND [--flags]   (dped-tf COMMAND --help for its flags)", "",
           "commands:"]
  for name, module in COMMANDS.items():
    lines.append(f"  {name:<18} {importlib.import_module(module).HELP}")
  return "\n".join(lines)


def main(argv):
  """Runs one command; returns the process exit status."""
  if len(argv) < 2 or argv[1] in ("-h", "--help", "help"):
    print(_usage())
    return 0 if len(argv) >= 2 else 2
  name = argv[1]
  if name not in COMMANDS:
    print(f"dped-tf: error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
    return 2
  module = importlib.import_module(COMMANDS[name])
  fv = flags.FlagValues()
  module.define_flags(fv)
  args = argv[2:]
  if "--help" in args or "-h" in args or "--helpfull" in args:
    print(f"usage: dped-tf {name} [--flags]\n\n{module.HELP}\n\n{fv.get_help()}")
    return 0
  try:
    rest = fv([f"dped-tf {name}"] + args)
  except flags.Error as e:
    print(f"dped-tf {name}: error: {e}", file=sys.stderr)
    return 2
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  try:
    return module.main(fv, rest[1:]) or 0
  except DpedError as e:
    print(f"dped-tf {name}: error: {e}", file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print(f"dped-tf {name}: interrupted", file=sys.stderr)
    return 130


def run_main():
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.exit(main(sys.argv))


if __name__ == "__main__":
  run_main()
