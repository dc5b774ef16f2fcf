"""Inference benchmark (issue 4, docs/method.md §1 and 7), everything side by side in one run.

Prints: the machine's own 3x3 64->64 convolution throughput over a 1 MP map (fp32 and
bf16); whole-image and exact tiled MPix/s at 1 MP and 4 MP in both precisions, with
the ratio achieved / conv peak (0.8 MFLOP per pixel); PSNR of tiled vs whole-image and
of bf16 vs fp32; XLA against the default graphs; a per-stage profile; the peak RSS of `dped-tf enhance` on a 6000x4000
(24 MP) photo, measured in a subprocess.

  python experiments/bench_inference.py [--model G.keras] [--skip_24mp]

Without --model the generator has He-scaled random weights (every layer matters to the
output; speed does not depend on the weights, the bf16-vs-fp32 PSNR does).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dped_tf import inference  # noqa: E402
from dped_tf.modeling.generator import Generator  # noqa: E402
from dped_tf.modeling.generator import load_generator  # noqa: E402

CONV_FLOP_PER_PIXEL = 2 * 3 * 3 * 64 * 64


def random_generator(seed=0):
  rng = np.random.default_rng(seed)
  model = Generator()
  model.build((None, None, None, 3))
  for conv in model.conv_layers():
    k = conv.kernel.shape
    conv.kernel.assign(rng.normal(0, np.sqrt(2 / (k[0] * k[1] * k[2])), k))
    conv.bias.assign(rng.normal(0, 0.1, k[3]))
  for layer in model.norm_layers():
    layer.shift.assign(rng.normal(0, 0.3, 64))
    layer.scale.assign(rng.uniform(0.5, 1.5, 64))
  return model


def photo(height, width, seed=1):
  """A smooth colour field with fine noise, uint8."""
  rng = np.random.default_rng(seed)
  y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
  x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
  phase = np.array([0.0, 2.0, 4.0], np.float32)
  base = 0.5 + 0.35 * np.sin(6 * x + 4 * y + phase) * np.cos(3 * y - phase)
  noise = rng.normal(0, 0.03, (height, width, 1)).astype(np.float32)
  return np.clip((base + noise) * 255, 0, 255).astype(np.uint8)


def timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def psnr(a, b):
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def conv_gflops(dtype, side=1024, repeats=3):
  x = tf.cast(tf.random.uniform([1, side, side, 64]), dtype)
  w = tf.cast(tf.random.normal([3, 3, 64, 64]) * 0.05, dtype)
  b = tf.zeros([64], dtype)
  fn = tf.function(lambda x: tf.nn.bias_add(tf.nn.conv2d(x, w, 1, "SAME"), b))
  fn(x).numpy()
  best = min(timed(lambda: fn(x).numpy())[1] for _ in range(repeats))
  return CONV_FLOP_PER_PIXEL * side * side / best / 1e9


def warm_up(enhancer, settings):
  """Traces the graphs (two sizes, so that later sizes reuse a shape-generic trace)."""
  for side in (40, 56):
    image = photo(side, side + 8)
    enhancer.whole(image[None].astype(np.float32) / 255)
    enhancer.tiled(image, tile=24)
  inference.enhance(enhancer, photo(64, 72), np.uint8, settings)


def profile(enhancer, side=512):
  """ms per stage on one side x side tile, against a bare 3x3 convolution."""
  dt = enhancer.dtype
  z, n = tf.constant(0), tf.constant(side)
  norm = (tf.ones([64]), tf.zeros([64]), tf.zeros([64]), tf.ones([64]))
  a = tf.cast(tf.random.normal([side + 2, side + 2, 64]), dt)
  skip = tf.random.normal([side + 2, side + 2, 64])
  a6 = tf.cast(tf.random.normal([side + 12, side + 12, 64]), dt)
  skip6 = tf.random.normal([side + 12, side + 12, 64])
  src = tf.random.uniform([side + 10, side + 10, 3])
  kernel, bias = enhancer._convs[2]  # pylint: disable=protected-access
  conv = tf.function(lambda x: tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "VALID"), bias))
  runs = {
      "bare 3x3 conv (1 unit)": lambda: conv(a[None]),
      "first: conv1 + conv (1.42 units)": lambda: enhancer._first(src, z, z, n, n, False),
      "middle: norm + conv + moments (1 unit)":
          lambda: enhancer._middle(a, skip, norm, enhancer._convs[3], z, z, n, n, False),
      "last: norm + conv10/11/12 (2.42 units)":
          lambda: enhancer._last(a6, skip6, norm, z, z, n, n, False),
  }
  out = {}
  for name, fn in runs.items():
    tf.nest.map_structure(lambda t: t.numpy(), fn())
    out[name] = min(timed(lambda: tf.nest.map_structure(lambda t: t.numpy(), fn()))[1]
                    for _ in range(3)) * 1e3
  return out


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
  start = time.perf_counter()
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  seconds = time.perf_counter() - start
  if proc.returncode:
    raise SystemExit(f"enhance failed: {proc.stderr.strip().splitlines()[-1:]}")
  lines = proc.stdout.strip().splitlines()
  peak_kb = int([l for l in lines if l.startswith("peak_rss_kb")][0].split()[1])
  return peak_kb / 1024, seconds, lines[0]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", help="generator .keras (default: He-scaled random weights)")
  parser.add_argument("--skip_24mp", action="store_true")
  args = parser.parse_args()
  model = load_generator(args.model) if args.model else random_generator()
  weights = inference.GeneratorWeights.from_model(model)
  print(f"model: {args.model or 'random (He-scaled) weights'}; "
        f"{os.cpu_count()} cores; bf16 hardware: {inference.resolve_precision('auto')}")

  peak = {p: conv_gflops(tf.as_dtype(p)) for p in ("float32", "bfloat16")}
  print("\n3x3 conv 64->64 over 1 MP (this machine, now):")
  for p, g in peak.items():
    print(f"  {p:<9} {g:7.1f} GFLOP/s = {g / inference.MFLOP_PER_PIXEL / 1e3:.3f} MPix/s at "
          f"0.8 MFLOP/px")
  print(f"  bf16 / fp32: {peak['bfloat16'] / peak['float32']:.2f}x")

  settings = inference.MemorySettings()  # the CLI's defaults
  rows, outputs = [], {}
  for precision in ("float32", "bfloat16"):
    enhancer = inference.Enhancer(weights, precision)
    warm_up(enhancer, settings)
    for side in (1024, 2048):
      image = photo(side, side)
      mp = side * side / 1e6
      whole, t_whole = timed(lambda: enhancer.whole(image[None].astype(np.float32) / 255)[0])
      tiled_settings = inference.MemorySettings(mode="tiled")
      tiled, t_tiled = timed(lambda: enhancer.tiled(
          image, tile=tiled_settings.tile_side(), max_memory=tiled_settings.budget,
          tmp_dir=tempfile.gettempdir()))
      outputs[(precision, side)] = whole
      rows.append((precision, side, mp / t_whole, mp / t_tiled,
                   psnr(np.clip(tiled, 0, 1), np.clip(whole, 0, 1))))
      print(f"  ... {precision} {side}x{side} done", flush=True)

  print("\nMPix/s (whole-image | exact tiled, default budget "
        f"{settings.budget >> 20} MB, tile {settings.tile_side()}):")
  print(f"  {'precision':<9} {'size':>9} {'whole':>7} {'tiled':>7} {'tiled/whole':>11} "
        f"{'whole/peak':>10} {'PSNR tiled-whole':>16}")
  for precision, side, whole, tiled, p in rows:
    ratio = whole * inference.MFLOP_PER_PIXEL * 1e3 / peak[precision]
    print(f"  {precision:<9} {side}x{side:<4} {whole:7.3f} {tiled:7.3f} {tiled / whole:11.2f} "
          f"{ratio:10.2f} {p:13.1f} dB")
  for side in (1024, 2048):
    print(f"  bf16 vs fp32 whole-image PSNR at {side}x{side}: "
          f"{psnr(np.clip(outputs[('bfloat16', side)], 0, 1), np.clip(outputs[('float32', side)], 0, 1)):.1f} dB")
  print("  (targets: fp32 >= 0.19 MPix/s and >= 0.85 of conv peak; bf16 >= 0.45 MPix/s, "
        ">= 40 dB vs fp32; tiled >= 0.5x whole; tiled vs whole >= 45 dB)")

  print("\nXLA (jit_compile) vs the default graphs, whole-image and tiled, 512x512, MPix/s:")
  image = photo(512, 512)
  for precision in ("float32", "bfloat16"):
    speeds = []
    for jit in (False, True):
      enhancer = inference.Enhancer(weights, precision, jit_compile=jit)
      warm_up(enhancer, settings)
      enhancer.whole(image[None] / np.float32(255))
      enhancer.tiled(image, tile=256)
      speeds.append(0.262144 / timed(lambda: enhancer.whole(image[None] / np.float32(255)))[1])
      speeds.append(0.262144 / timed(lambda: enhancer.tiled(image, tile=256))[1])
    print(f"  {precision:<9} whole {speeds[0]:.3f} -> XLA {speeds[2]:.3f}; "
          f"tiled {speeds[1]:.3f} -> XLA {speeds[3]:.3f}")

  print("\nprofile, one 512x512 tile (ms):")
  for precision in ("float32", "bfloat16"):
    stages = profile(inference.Enhancer(weights, precision))
    print(f"  {precision}: " + "; ".join(f"{k} {v:.0f}" for k, v in stages.items()))

  if not args.skip_24mp:
    with tempfile.TemporaryDirectory() as work:
      path = os.path.join(work, "g.keras")
      model.save(path)
      rss, seconds, line = rss_24mp(path, work)
    print(f"\n6000x4000 (24 MP) `dped-tf enhance` with the defaults, in a subprocess:\n  {line}\n"
          f"  peak RSS {rss:.0f} MB (target < 2500), {seconds:.0f} s end to end "
          f"({24 / seconds:.3f} MPix/s including start-up, decode and encode)")


if __name__ == "__main__":
  main()
