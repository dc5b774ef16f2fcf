"""Inference benchmark (docs/method.md §1, 7), everything side by side in one process.

Prints the CPU model; the convolution peak of this CPU in each precision (one 3x3
64->64 conv over the image, as generator MPix/s at 0.8 MFLOP per pixel) and the
whole-image speed as a fraction of it; whole-image (`model(x)`) and exact tiled MPix/s
at 1 MP and 4 MP, tiled as a ratio to whole (target >= 0.85),
float32 and bfloat16, each as a ratio to an independent TF1-style graph of the same
generator (plain `tf.nn` ops on the raw checkpoint variables, tests/authors_graph.py)
run in float32 in the same process; PSNR of tiled vs whole-image and of bfloat16 vs
float32; the peak RSS of `dped-tf enhance` on a 6000x4000 (24 MP) photo, in a subprocess.

  python experiments/bench_inference.py [--model G.keras] [--sides 1024,2048] [--skip_24mp]

Without --model the generator has He-scaled random weights (tests/conftest.py; speed
does not depend on the weights, the bfloat16-vs-float32 PSNR does).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_ROOT, os.path.join(_ROOT, "tests")]

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from authors_graph import checkpoint_arrays  # noqa: E402
from authors_graph import session_runner  # noqa: E402
from conftest import random_weights_model  # noqa: E402
from dped_tf import inference  # noqa: E402
from dped_tf import precision  # noqa: E402
from dped_tf.modeling.generator import load_generator  # noqa: E402


def run_timed(cmd):
  """Runs `cmd` (a dped_tf command line) with this checkout on PYTHONPATH: (seconds,
  stdout); exits naming the command's last error line when it fails."""
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                        env={**os.environ, "PYTHONPATH": _ROOT})
  elapsed = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"enhance failed: {proc.stderr.strip().splitlines()[-1:]}")
  return elapsed, proc.stdout


def photo(height, width, seed=1):
  """A smooth colour field with fine noise, uint8."""
  rng = np.random.default_rng(seed)
  y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
  x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
  phase = np.array([0.0, 2.0, 4.0], np.float32)
  base = 0.5 + 0.35 * np.sin(6 * x + 4 * y + phase) * np.cos(3 * y - phase)
  noise = rng.normal(0, 0.03, (height, width, 1)).astype(np.float32)
  return np.clip((base + noise) * 255, 0, 255).astype(np.uint8)


def seconds(fn, repeats):
  """(result, best wall time of `repeats` runs)."""
  best, result = float("inf"), None
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    best = min(best, time.perf_counter() - start)
  return result, best


def psnr(a, b):
  mse = np.mean((np.clip(a, 0, 1).astype(np.float64) - np.clip(b, 0, 1)) ** 2)
  return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


# FLOP per output pixel of the DPED generator: conv1 and conv12 (9x9, 3 <-> 64 channels)
# and ten 3x3 64 -> 64 convolutions.
GENERATOR_FLOP_PER_PIXEL = 2 * (2 * 81 * 3 * 64 + 10 * 9 * 64 * 64)


def conv_peak(side, compute_dtype, repeats):
  """Generator-equivalent MPix/s of the CPU's 3x3 64 -> 64 convolution rate."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  x = tf.cast(tf.random.uniform([1, side, side, 64]), compute_dtype)
  kernel = tf.cast(tf.random.normal([3, 3, 64, 64], stddev=0.05), compute_dtype)
  conv = tf.function(lambda x: tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME")))
  conv(x)
  _, t = seconds(lambda: conv(x).numpy(), repeats)
  flop_per_s = 2 * 9 * 64 * 64 * side * side / t
  return flop_per_s / GENERATOR_FLOP_PER_PIXEL / 1e6


def warm_up(enhancer, tile):
  """Traces the graphs (two sizes, so that later sizes reuse a shape-generic trace)."""
  for side in (40, 56):
    image = photo(side, side + 8)
    enhancer.whole(image[None].astype(np.float32) / 255)
    enhancer.tiled(image, tile=24)
  enhancer.tiled(photo(tile + 8, tile + 16), tile=tile)


# The child reads its own high-water mark: ru_maxrss would also count the parent's pages
# (Linux carries the pre-exec memory of a forked child into its maxrss).
_CHILD = """
import sys
from dped_tf import cli
status = cli.main(["dped-tf", "enhance"] + sys.argv[1:])
with open("/proc/self/status") as f:
  peak = [l.split()[1] for l in f if l.startswith("VmHWM:")][0]
print("peak_rss_kb", peak)
sys.exit(status)
"""


def rss_24mp(model_path, work):
  """Runs `dped-tf enhance` on a 6000x4000 JPEG in a subprocess: (peak RSS MB, s)."""
  src = os.path.join(work, "in", "big.jpg")
  os.makedirs(os.path.dirname(src))
  cv2.imwrite(src, photo(4000, 6000)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
  cmd = [sys.executable, "-c", _CHILD, src, "--model", model_path,
         "--out", os.path.join(work, "out"), "--tmp_dir", work]
  elapsed, stdout = run_timed(cmd)
  lines = stdout.strip().splitlines()
  peak_kb = int([l for l in lines if l.startswith("peak_rss_kb")][0].split()[1])
  return peak_kb / 1024, elapsed, lines[0]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", help="instance-norm generator .keras (default: random "
                      "He-scaled weights)")
  parser.add_argument("--sides", default="1024,2048", help="square image sides to time")
  parser.add_argument("--precisions", default="float32,bfloat16")
  parser.add_argument("--repeats", type=int, default=2, help="best of N runs")
  parser.add_argument("--skip_24mp", action="store_true")
  args = parser.parse_args()
  model = load_generator(args.model) if args.model else random_weights_model()
  native = precision.cpu_has_bf16()
  print(f"CPU: {precision.cpu_model()}, {os.cpu_count()} cores; bfloat16: "
        + ("native (AMX/AVX512-BF16)" if native else
           "EMULATED (no AMX/AVX512-BF16: oneDNN converts to float32; slow here)"))
  print(f"model: {args.model or 'random (He-scaled) weights'}")

  settings = inference.MemorySettings(mode="tiled")  # the CLI's default budget
  tile = settings.tile_side()
  enhancers = {p: inference.Enhancer.from_model(model, p) for p in args.precisions.split(",")}
  for enhancer in enhancers.values():
    warm_up(enhancer, tile)
  arrays = checkpoint_arrays(model)
  rows = []
  for side in (int(s) for s in args.sides.split(",")):
    image = photo(side, side)
    x = image[None].astype(np.float32) / 255
    mp = side * side / 1e6
    graph = session_runner(arrays, x.shape)
    graph(x)
    reference, t_graph = seconds(lambda: graph(x), args.repeats)
    speeds, outputs = {}, {}
    for p, enhancer in enhancers.items():
      whole, t_whole = seconds(lambda: enhancer.whole(x)[0], args.repeats)
      tiled, t_tiled = seconds(lambda: enhancer.tiled(
          image, tile=tile, max_memory=settings.budget, tmp_dir=tempfile.gettempdir()),
          args.repeats)
      speeds[p] = (mp / t_whole, mp / t_tiled)
      outputs[p] = (whole, tiled)
      print(f"  ... {side}x{side} {p} done", flush=True)
    _, t_graph_after = seconds(lambda: graph(x), 1)  # the load may have changed meanwhile
    graph_speed = mp / min(t_graph, t_graph_after)
    peaks = {p: conv_peak(side, e.model.compute_dtype, args.repeats)
             for p, e in enhancers.items()}
    rows.append((side, graph_speed, speeds, outputs,
                 psnr(next(iter(outputs.values()))[0], reference[0]), peaks))

  print(f"\nMPix/s and ratio to the TF1 graph's float32 speed (tiled: tile {tile}, budget "
        f"{settings.budget >> 20} MB):")
  print(f"  {'size':>9} {'TF1 fp32':>9} | " + " | ".join(
      f"{'whole ' + p:>18} {'tiled ' + p:>18}" for p in enhancers))
  for side, graph_speed, speeds, _, _, _ in rows:
    print(f"  {side}x{side:<4} {graph_speed:9.3f} | " + " | ".join(
        " ".join(f"{f'{s:7.3f} ({s / graph_speed:4.2f}x)':>18}" for s in speeds[p])
        for p in enhancers))
  print("  (issue 10 on a 2-core Xeon with AMX: whole fp32 1.18x, whole bf16 2.2x, "
        "tiled bf16 0.95x)")
  print("\nAgainst the targets (whole / conv peak: fp32 >= 0.9, bf16 >= 0.85; "
        "tiled / whole >= 0.85):")
  for side, _, speeds, _, _, peaks in rows:
    print(f"  {side}x{side}: " + "; ".join(
        f"{p} conv peak {peaks[p]:.3f} MPix/s, whole/peak {speeds[p][0] / peaks[p]:.2f}, "
        f"tiled/whole {speeds[p][1] / speeds[p][0]:.2f}" for p in enhancers))
  print("\nPSNR (dB):")
  for side, _, _, outputs, vs_graph, _ in rows:
    line = [f"tiled vs whole {p} {psnr(t, w):.1f}" for p, (w, t) in outputs.items()]
    if len(outputs) == 2:
      line.append(f"whole bfloat16 vs float32 {psnr(outputs['bfloat16'][0], outputs['float32'][0]):.1f}")
    line.append(f"whole {next(iter(outputs))} vs TF1 graph {vs_graph:.1f}")
    print(f"  {side}x{side}: " + "; ".join(line) + "  (target: tiled vs whole float32 >= 60)")

  if not args.skip_24mp:
    with tempfile.TemporaryDirectory() as work:
      path = os.path.join(work, "g.keras")
      model.save(path)
      rss, elapsed, line = rss_24mp(path, work)
    print(f"\n6000x4000 (24 MP) `dped-tf enhance` with the defaults, in a subprocess:\n  {line}\n"
          f"  peak RSS {rss:.0f} MB (target < 2500), {elapsed:.0f} s end to end "
          f"({24 / elapsed:.3f} MPix/s including start-up, decode and encode)")


if __name__ == "__main__":
  main()
