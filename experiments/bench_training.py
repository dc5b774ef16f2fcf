"""Seconds per DPED training iteration through `fit()`, float32 vs mixed_bfloat16, side
by side; with `--hand_loop`, also the step called from a Python loop (the hand loop
`dped-tf train` used before it went through `fit()`).

One iteration = the reference's generator step + critic step (docs/method.md §4) on batch 50 of
100x100 patches with the full loss (VGG-19 relu5_4 content included). Each run is its
own subprocess (Keras' dtype policy is process-global) on the same random batch,
repeated; mixed_bfloat16 is timed with the reference float32 VGG-19 and with the opt-in
`--vgg_precision bfloat16`. `--only float32` skips the mixed_bfloat16 runs. VGG weights are random here (same compute as ImageNet's,
which cannot be downloaded on these machines). Reference figure: the authors' TF1
graph, 19.6 s per iteration on these 2-core machines (docs/method.md §7).

  python experiments/bench_training.py [--iterations 3] [--batch_size 50] [--hand_loop]
"""

import argparse
import json
import os
import subprocess
import sys
import time

from dped_tf.precision import cpu_model

REFERENCE_TF1_SECONDS = 19.6


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
  first, times = ends[0] - t0, [b - a for a, b in zip(ends, ends[1:])]
  return {"precision": precision, "xla": xla, "vgg": vgg_precision, "loop": loop,
          "first_s": first, "times_s": times, "median_s": sorted(times)[len(times) // 2]}


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
    print(json.dumps(measure(precision, args.iterations, args.batch_size, args.patch_size,
                             xla == "1", vgg_precision, loop)))
    return
  runs = ["float32:0:float32:fit"]
  runs += ["float32:0:float32:hand"] if args.hand_loop else []
  runs += [] if args.only else ["mixed_bfloat16:0:float32:fit", "mixed_bfloat16:0:bfloat16:fit"]
  runs += ["float32:1:float32:fit"] if args.xla else []
  results = []
  for run in runs:
    out = subprocess.run([sys.executable, __file__, "--child", run,
                          "--iterations", str(args.iterations), "--batch_size",
                          str(args.batch_size), "--patch_size", str(args.patch_size)],
                         capture_output=True, text=True, check=True)
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
  from dped_tf.precision import cpu_has_bf16  # pylint: disable=import-outside-toplevel
  print(f"CPU: {cpu_model()} ({os.cpu_count()} cores; bfloat16 "
        f"{'native (AMX/AVX512-BF16)' if cpu_has_bf16() else 'emulated'})")
  print(f"Training iteration, batch {args.batch_size} of {args.patch_size}x{args.patch_size}, "
        f"generator + critic step, full loss incl. VGG-19 ({args.iterations} timed, "
        "median; random VGG weights, same compute)")
  print(f"{'policy':<44}{'s/iter':>9}{'patches/s':>11}{'vs TF1 19.6 s':>15}{'first (trace)':>15}")
  for r in results:
    name = r["precision"] + (" + XLA" if r["xla"] else "") + (
        ", VGG bf16" if r["vgg"] == "bfloat16" else "") + (
        ", fit()" if r["loop"] == "fit" else ", hand loop")
    print(f"{name:<44}{r['median_s']:>9.2f}{2 * args.batch_size / r['median_s']:>11.1f}"
          f"{REFERENCE_TF1_SECONDS / r['median_s']:>14.2f}x{r['first_s']:>14.1f}s")
  fp32 = results[0]["median_s"]
  if args.hand_loop:
    print(f"float32 s/iteration, fit() / hand loop: {fp32 / results[1]['median_s']:.3f}")
  if args.only:
    return
  results = [r for r in results if r["loop"] == "fit"]
  print(f"mixed_bfloat16 / float32 speed-up: {fp32 / results[1]['median_s']:.2f}x with the "
        f"reference float32 VGG-19 (target >= 1.8), {fp32 / results[2]['median_s']:.2f}x with "
        "--vgg_precision bfloat16 (target >= 2.5)")


if __name__ == "__main__":
  main()
