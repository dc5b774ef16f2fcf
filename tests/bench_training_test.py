"""experiments/bench_training.py at a tiny size: DPEDTrainer's iteration and the authors'
TF1 training graph timed in the same run, printed as ratios with the CPU model."""

import re

import pytest

from dped_tf.precision import cpu_model


def test_bench_training_times_the_tf1_graph_in_the_same_run(run_experiment):
  printed = run_experiment("bench_training", "--iterations", "1", "--batch_size", "2",
                           "--patch_size", "32", "--only", "float32")
  assert f"CPU: {cpu_model()}" in printed
  rows = {name: (float(seconds), float(ratio)) for name, seconds, ratio in re.findall(
      r"^(authors' TF1 graph, float32|float32, fit\(\))\s+([\d.]+)\s+[\d.]+\s+([\d.]+)x",
      printed, re.M)}
  assert set(rows) == {"authors' TF1 graph, float32", "float32, fit()"}, printed
  tf1, _ = rows["authors' TF1 graph, float32"]
  assert rows["authors' TF1 graph, float32"][1] == 1.0
  seconds, ratio = rows["float32, fit()"]
  assert ratio == pytest.approx(tf1 / seconds, rel=0.1, abs=0.01)  # of 2-decimal figures
