"""Seconds per DPED training iteration through `fit()`, float32 vs bfloat16, side
by side, and as ratios to the authors' released TF1 training graph timed in the same run
(`dped_tf.testing.authors_training`); with `--hand_loop`, also the step called from a
Python loop (the hand loop `dped-tf train` used before it went through `fit()`).

One iteration = the reference's generator step + critic step (docs/method.md §4) on batch
50 of 100x100 patches with the full loss (VGG-19 relu5_4 content included), in DPEDTrainer
and in the TF1 graph alike. Each run is its own subprocess (Keras' dtype policy is
process-global) on a random batch, repeated; bfloat16 is timed with the reference
float32 VGG-19 and with the opt-in `--vgg_precision bfloat16`. `--only float32` skips the
bfloat16 runs. VGG weights are random here (same compute as ImageNet's, which
cannot be downloaded on these machines).

  python experiments/bench_training.py [--iterations 3] [--batch_size 50] [--patch_size 100]
      [--hand_loop] [--xla] [--only float32]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from dped_tf.precision import cpu_has_bf16, cpu_model


def measure(precision, iterations, batch_size, patch, xla, vgg_precision, loop):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import keras  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from dped_tf import configs  # pylint: disable=import-outside-toplevel
  from dped_tf.training import loop as training_loop  # pylint: disable=import-outside-toplevel
  cfg = configs.TrainConfig(batch_size=batch_size, patch_size=patch, vgg_weights="none",
                            precision=precision, vgg_precision=vgg_precision)
  trainer, _ = training_loop.build_trainer(cfg)
  rng = tf.random.Generator.from_seed(0)
  batch = tuple(rng.uniform([2 * batch_size, patch, patch, 3]) for _ in range(2))
  ends = []
  if loop == "fit":
    class Clock(keras.callbacks.Callback):
      def on_train_batch_end(self, step, logs=None):
        float(logs["g_loss"])  # the step has finished
        ends.append(time.perf_counter())
    trainer.jit_compile = xla
    t0 = time.perf_counter()
    trainer.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=iterations + 1,
                epochs=1, verbose=0, shuffle=False, callbacks=[Clock()])
  else:  # the hand loop
    step = tf.function(trainer.train_step, jit_compile=xla)
    t0 = time.perf_counter()
    for _ in range(iterations + 1):
      float(step(batch)["g_loss"])
      ends.append(time.perf_counter())
  return {"precision": precision, "xla": xla, "vgg": vgg_precision, "loop": loop,
          **timings(t0, ends)}


def measure_authors(iterations, batch_size, patch):
  """The authors' TF1 training graph, float32, on random weights and batches."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  # pylint: disable=import-outside-toplevel
  import numpy as np
  from dped_tf.testing.authors_training import AuthorsTraining
  rng = np.random.default_rng(0)
  phone, dslr = (rng.uniform(size=(2 * batch_size, patch, patch, 3)).astype(np.float32)
                 for _ in range(2))
  t0 = time.perf_counter()
  authors = AuthorsTraining(batch_size, patch)
  ends = []
  for _ in range(iterations + 1):
    authors.iteration(phone, dslr, rng.integers(0, 2, batch_size))
    ends.append(time.perf_counter())
  return {"precision": "float32", "xla": False, "vgg": "float32", "loop": "tf1",
          **timings(t0, ends)}


def timings(t0, ends):
  """The first iteration (with building and tracing) apart; the median of the others."""
  times = [b - a for a, b in zip(ends, ends[1:])]
  return {"first_s": ends[0] - t0, "times_s": times, "median_s": sorted(times)[len(times) // 2]}


def name_of(run):
  if run["loop"] == "tf1":
    return "authors' TF1 graph, float32"
  return run["precision"] + (" + XLA" if run["xla"] else "") + (
      ", VGG bf16" if run["vgg"] == "bfloat16" else "") + (
      ", fit()" if run["loop"] == "fit" else ", hand loop")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--iterations", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--patch_size", type=int, default=100)
  parser.add_argument("--xla", action="store_true", help="also time float32 with XLA")
  parser.add_argument("--hand_loop", action="store_true",
                      help="also time the step from a Python loop, beside fit()")
  parser.add_argument("--only", choices=["float32"], help="float32 runs only")
  parser.add_argument("--child", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.child:
    precision, xla, vgg_precision, loop = args.child.split(":")
    if loop == "tf1":
      result = measure_authors(args.iterations, args.batch_size, args.patch_size)
    else:
      result = measure(precision, args.iterations, args.batch_size, args.patch_size,
                       xla == "1", vgg_precision, loop)
    print(json.dumps(result))
    return
  runs = ["float32:0:float32:tf1", "float32:0:float32:fit"]
  runs += ["float32:0:float32:hand"] if args.hand_loop else []
  runs += [] if args.only else ["bfloat16:0:float32:fit", "bfloat16:0:bfloat16:fit"]
  runs += ["float32:1:float32:fit"] if args.xla else []
  results = []
  for run in runs:
    out = subprocess.run([sys.executable, __file__, "--child", run,
                          "--iterations", str(args.iterations), "--batch_size",
                          str(args.batch_size), "--patch_size", str(args.patch_size)],
                         capture_output=True, text=True, check=True)
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
  authors, results = results[0], results[1:]
  print(f"CPU: {cpu_model()} ({os.cpu_count()} cores; bfloat16 "
        f"{'native (AMX/AVX512-BF16)' if cpu_has_bf16() else 'emulated'})")
  print(f"Training iteration, batch {args.batch_size} of {args.patch_size}x{args.patch_size}, "
        f"generator + critic step, full loss incl. VGG-19 ({args.iterations} timed, "
        "median; random VGG weights, same compute)")
  print(f"{'run':<44}{'s/iter':>9}{'patches/s':>11}{'vs TF1':>11}{'first (trace)':>15}")
  for r in [authors, *results]:
    print(f"{name_of(r):<44}{r['median_s']:>9.2f}{2 * args.batch_size / r['median_s']:>11.1f}"
          f"{authors['median_s'] / r['median_s']:>10.2f}x{r['first_s']:>14.1f}s")
  fp32 = results[0]["median_s"]
  if args.hand_loop:
    print(f"float32 s/iteration, fit() / hand loop: {fp32 / results[1]['median_s']:.3f}")
  if args.only:
    return
  results = [r for r in results if r["loop"] == "fit"]
  print(f"bfloat16 / float32 speed-up: {fp32 / results[1]['median_s']:.2f}x with the "
        f"reference float32 VGG-19 (target >= 1.8), {fp32 / results[2]['median_s']:.2f}x with "
        "--vgg_precision bfloat16 (target >= 2.5)")


if __name__ == "__main__":
  main()
