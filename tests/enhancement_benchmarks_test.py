"""experiments/bench_inference.py and bench_enhance.py still run, at their tiniest sizes,
on the public API (`make bench` runs them at full size)."""

import os
import subprocess
import sys

import pytest

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "experiments")


def run_script(name, *args):
  result = subprocess.run([sys.executable, os.path.join(EXPERIMENTS, name), *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout


@pytest.mark.parametrize("name", ["bench_inference.py", "bench_enhance.py"])
def test_scripts_use_only_public_dped_tf_names(name):
  with open(os.path.join(EXPERIMENTS, name)) as f:
    source = f.read()
  assert "sys.path" not in source
  assert "._" not in source.replace("__", "")


def test_bench_inference_runs():
  out = run_script("bench_inference.py", "--sizes", "40x56", "--precisions", "float32",
                   "--repeats", "1", "--max_memory", "64", "--enhance_size", "48x64")
  assert "tile 92)" in out  # sqrt(64 MB / 4 / 1536 B) - 12
  assert "40x56: float32: conv peak" in out and "tiled vs whole float32" in out
  assert "48x64 (64x48):" in out and "peak RSS" in out


def test_bench_enhance_runs():
  out = run_script("bench_enhance.py", "--size", "48x64", "--photos", "2", "--repeats", "1",
                   "--precision", "float32")
  assert "dped-tf enhance, folder of 2:" in out
  for where in ("RAM", "files"):
    assert f"tiled profile (0.00 MP, maps in {where})" in out
  assert out.count("map reads (window assembly)") == 2
