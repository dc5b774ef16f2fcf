"""What the speed benchmarks share: best-of-N timing and `dped_tf` commands timed in a
subprocess."""

import os
import subprocess
import time

import dped_tf


def seconds(fn, repeats):
  """(result, best wall time of `repeats` runs)."""
  best, result = float("inf"), None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    best = min(best, time.perf_counter() - start)
  return result, best


def run_timed(cmd):
  """Runs `cmd` (a command line that runs dped_tf) with the checkout of this `dped_tf`
  first on PYTHONPATH: (seconds, stdout); exits naming the command's last error line
  when it fails."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(dped_tf.__file__)))
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                        env={**os.environ, "PYTHONPATH": root})
  elapsed = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"command failed: {proc.stderr.strip().splitlines()[-1:]}")
  return elapsed, proc.stdout
