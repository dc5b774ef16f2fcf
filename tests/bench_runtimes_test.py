"""experiments/bench_runtimes.py: public names only, and it starts (a full run exports every
format and takes minutes: `make bench`; its parts are tested in export_formats_test.py)."""

import os
import subprocess
import sys

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                      "experiments", "bench_runtimes.py")


def test_uses_only_public_dped_tf_names_and_starts_without_tensorflow():
  with open(SCRIPT) as f:
    source = f.read()
  assert "sys.path" not in source
  assert "._" not in source.replace("__", "")
  probe = ("import runpy, sys; sys.argv = ['bench_runtimes.py', '--help']\n"
           "try:\n  runpy.run_path(%r, run_name='__main__')\n"
           "except SystemExit:\n  pass\n"
           "assert 'tensorflow.python' not in sys.modules, 'TensorFlow ran for --help'\n" % SCRIPT)
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       timeout=120, check=True).stdout
  assert "--model" in out and "--sizes" in out
