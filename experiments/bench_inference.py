"""Inference benchmark (docs/method.md §1, 7), everything side by side in one process.

Prints the CPU model, then for float32 and bfloat16:
  - the convolution peak of this CPU (one 3x3 64->64 conv with bias and ReLU over the
    image, timed right after the whole-image run, as generator MPix/s at 0.8 MFLOP per
    pixel) and the whole-image speed (`model(x)`) as a fraction of it (targets: float32
    >= 0.9, bfloat16 >= 0.85);
  - exact tiled inference the way `dped-tf enhance` runs it (`photo.enhance_pixels` at
    the default 1536 MB budget: the maps in RAM when they fit, else in files) as a ratio to
    enhance's whole-image path (target >= 0.85) at 1, 4 and 12 MP; whole-image inference
    of 12 MP needs about 15 GB, so the 12 MP row is compared with the 4 MP whole image;
  - both as ratios to an independent TF1-style graph of the same generator (plain
    `tf.nn` ops on the raw checkpoint variables, dped_tf/testing/authors_graph.py) in
    float32;
PSNR of tiled vs whole-image and of bfloat16 vs float32; the wall time and peak RSS of
`dped-tf enhance` with the defaults on a 12 MP (4000x3000) and a 108 MP (12000x9000)
JPEG, each in a subprocess (targets: 12 MP <= 30 s and <= 1.5 GB, 108 MP <= 2 GB).

  python experiments/bench_inference.py [--model G.keras] [--skip_108mp]
      [--sizes "1 MP,4 MP,12 MP" or HxW,...] [--max_memory 1536]

Without --model the generator has He-scaled random weights (dped_tf/testing/models.py;
speed does not depend on the weights, the bfloat16-vs-float32 PSNR does: pass a trained
model for that row).
"""

import argparse
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from dped_tf import precision  # noqa: E402
from dped_tf.enhancement.executor import Enhancer  # noqa: E402
from dped_tf.enhancement.memory import MemorySettings  # noqa: E402
from dped_tf.enhancement.photo import enhance_pixels  # noqa: E402
from dped_tf.modeling.factory import load_generator  # noqa: E402
from dped_tf.testing.authors_graph import checkpoint_arrays  # noqa: E402
from dped_tf.testing.authors_graph import session_runner  # noqa: E402
from dped_tf.testing.bench import run_timed  # noqa: E402
from dped_tf.testing.bench import seconds  # noqa: E402
from dped_tf.testing.models import random_weights_model  # noqa: E402
from dped_tf.testing.photos import smooth_photo  # noqa: E402

# (label, height, width); whole-image and the TF1 graph run up to WHOLE_LIMIT pixels.
SIZES = (("1 MP", 1024, 1024), ("4 MP", 2048, 2048), ("12 MP", 3000, 4000))
WHOLE_LIMIT = 2048 * 2048


def parse_sizes(text):
  """Comma-separated labels of SIZES ("1 MP") or HxW -> [(label, height, width)]."""
  labels = {s[0]: s for s in SIZES}
  sizes = []
  for item in text.split(","):
    if item in labels:
      sizes.append(labels[item])
    else:
      height, width = (int(v) for v in item.lower().split("x"))
      sizes.append((f"{height}x{width}", height, width))
  return sizes


def large_jpeg(path, height, width):
  """A JPEG of `smooth_photo` made at a quarter of the size, upscaled, with fine noise (so
  that a 108 MP one is written in seconds and little memory)."""
  small = smooth_photo(height // 4, width // 4)
  big = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
  noise = np.random.default_rng(0).integers(-6, 7, (height, width, 1), dtype=np.int16)
  big = np.clip(big.astype(np.int16) + noise, 0, 255).astype(np.uint8)
  cv2.imwrite(path, big[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


def psnr(a, b):
  """PSNR in dB of two images in [0, 1] (uint8 taken as /255)."""
  a, b = (x / 255.0 if x.dtype == np.uint8 else np.clip(x, 0, 1).astype(np.float64)
          for x in (a, b))
  mse = np.mean((a - b) ** 2)
  return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


# FLOP per output pixel of the DPED generator: conv1 and conv12 (9x9, 3 <-> 64 channels)
# and ten 3x3 64 -> 64 convolutions.
GENERATOR_FLOP_PER_PIXEL = 2 * (2 * 81 * 3 * 64 + 10 * 9 * 64 * 64)


def conv_peak(height, width, compute_dtype, repeats):
  """Generator-equivalent MPix/s of the CPU's 3x3 64 -> 64 convolution (with the bias
  and ReLU that grappler fuses into it, as in the generator) over one image."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  x = tf.cast(tf.random.uniform([1, height, width, 64]), compute_dtype)
  kernel = tf.Variable(tf.cast(tf.random.normal([3, 3, 64, 64], stddev=0.05), compute_dtype))
  bias = tf.Variable(tf.zeros([64], compute_dtype))
  conv = tf.function(lambda x: tf.nn.relu(tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"),
                                                         bias)))
  conv(x)
  # best of 5 at least (2 vary by 20%); one element read back, not a 0.25-1 GB copy
  _, t = seconds(lambda: float(conv(x)[0, 0, 0, 0]), max(5, repeats))
  flop_per_s = 2 * 9 * 64 * 64 * height * width / t
  return flop_per_s / GENERATOR_FLOP_PER_PIXEL / 1e6


def warm_up(enhancer, settings):
  """Traces the graphs (two sizes, so that later sizes reuse a shape-generic trace)."""
  for side in (40, 56):
    image = smooth_photo(side, side + 8)
    enhancer.whole(image[None].astype(np.float32) / 255)
    enhancer.tiled(image, tile=24)
  tile = settings.tile_side()
  enhance_pixels(enhancer, smooth_photo(tile + 8, 2 * tile + 16), np.uint8, settings)


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


def enhance_run(model_path, work, height, width):
  """`dped-tf enhance` with the defaults on a height x width JPEG in a subprocess:
  (peak RSS MB, wall s, its summary line)."""
  src = os.path.join(work, f"in{height}", "photo.jpg")
  os.makedirs(os.path.dirname(src))
  large_jpeg(src, height, width)
  cmd = [sys.executable, "-c", _CHILD, src, "--model", model_path,
         "--out", os.path.join(work, f"out{height}"), "--tmp_dir", work]
  elapsed, stdout = run_timed(cmd)
  lines = stdout.strip().splitlines()
  peak_kb = int([l for l in lines if l.startswith("peak_rss_kb")][0].split()[1])
  return peak_kb / 1024, elapsed, [l for l in lines if " -> " in l][0]  # not a progress line


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", help="instance-norm generator .keras (default: random "
                      "He-scaled weights)")
  parser.add_argument("--sizes", default=",".join(s[0] for s in SIZES),
                      help="which of " + ", ".join(s[0] for s in SIZES) + ", or HxW")
  parser.add_argument("--max_memory", type=int, default=1536,
                      help="enhance's memory budget in MB (sets the tile side)")
  parser.add_argument("--precisions", default="float32,bfloat16")
  parser.add_argument("--repeats", type=int, default=2, help="best of N runs")
  parser.add_argument("--skip_enhance", action="store_true",
                      help="skip the 12 MP and 108 MP `dped-tf enhance` runs")
  parser.add_argument("--skip_108mp", action="store_true")
  parser.add_argument("--enhance_size", help="HxW: one `dped-tf enhance` run of this size "
                      "instead of the 12 MP and 108 MP ones")
  args = parser.parse_args()
  model = load_generator(args.model) if args.model else random_weights_model()
  native = precision.cpu_has_bf16()
  print(f"CPU: {precision.cpu_model()}, {os.cpu_count()} cores; bfloat16: "
        + ("native (AMX/AVX512-BF16)" if native else
           "EMULATED (no AMX/AVX512-BF16: oneDNN converts to float32; slow here)"))
  print(f"model: {args.model or 'random (He-scaled) weights'}")

  enhancers = {p: Enhancer(model, p) for p in args.precisions.split(",")}
  working_set = next(iter(enhancers.values())).working_set
  settings = MemorySettings(working_set, args.max_memory * 2**20, mode="tiled")
  whole_mode = MemorySettings(working_set, args.max_memory * 2**20, mode="whole")
  for enhancer in enhancers.values():
    warm_up(enhancer, settings)
  arrays = checkpoint_arrays(model)
  sizes = parse_sizes(args.sizes)
  rows, whole_speed = [], {}
  for label, height, width in sizes:
    image = smooth_photo(height, width)
    mp = height * width / 1e6
    x = image[None].astype(np.float32) / 255 if height * width <= WHOLE_LIMIT else None
    graph_speed = reference = None
    if x is not None:
      graph = session_runner(arrays, x.shape)
      graph(x)
      reference, t_graph = seconds(lambda: graph(x), 1)
      graph_speed = mp / t_graph
    row = {"label": label, "graph": graph_speed, "whole": {}, "whole8": {}, "tiled": {},
           "peak": {}, "out": {}, "reference": reference}
    for p, enhancer in enhancers.items():
      if x is not None:
        whole, t_whole = seconds(lambda: enhancer.whole(x)[0], args.repeats)
        # tiled / whole compares enhance's two paths (uint8 in and out for both)
        _, t_whole8 = seconds(lambda: enhance_pixels(enhancer, image, np.uint8, whole_mode),
                              args.repeats)
        whole_speed[p] = mp / t_whole8
        row["peak"][p] = conv_peak(height, width, enhancer.model.compute_dtype, args.repeats)
      tiled, t_tiled = seconds(lambda: enhance_pixels(enhancer, image, np.uint8, settings),
                               1 if x is None else args.repeats)
      row["whole"][p] = mp / t_whole if x is not None else None
      row["whole8"][p] = whole_speed[p] if x is not None else None
      row["tiled"][p] = mp / t_tiled
      row["out"][p] = (whole if x is not None else None, tiled)
      print(f"  ... {label} {p} done", flush=True)
    row["whole_ref"] = dict(whole_speed)  # the largest whole-image run so far
    rows.append(row)

  print(f"\nMPix/s; tiled = `dped-tf enhance`'s tiled path at the budget "
        f"({settings.budget >> 20} MB, tile {settings.tile_side()}); ratios in brackets: "
        "to the TF1 graph's float32 speed")
  print(f"  {'size':>6} {'TF1 fp32':>9} | " + " | ".join(
      f"{'whole ' + p:>18} {'tiled ' + p:>18}" for p in enhancers))
  for r in rows:
    g = r["graph"]
    cells = []
    for p in enhancers:
      for s in (r["whole"][p], r["tiled"][p]):
        cells.append(f"{'-':>18}" if s is None else
                     f"{f'{s:7.3f} ({s / g:4.2f}x)' if g else f'{s:7.3f}':>18}")
    graph = f"{g:9.3f}" if g else f"{'-':>9}"
    print(f"  {r['label']:>6} {graph} | " + " | ".join(
        " ".join(cells[2 * i:2 * i + 2]) for i in range(len(enhancers))))

  print("\nAgainst the targets (whole / conv peak: float32 >= 0.9, bfloat16 >= 0.85; "
        "tiled / whole >= 0.85, both as `enhance` runs them, uint8 in and out):")
  for r in rows:
    parts = []
    for p in enhancers:
      if r["whole"][p]:
        parts.append(f"{p}: conv peak {r['peak'][p]:.3f} MPix/s, whole/peak "
                     f"{r['whole'][p] / r['peak'][p]:.2f}, tiled/whole "
                     f"{r['tiled'][p] / r['whole8'][p]:.2f}")
      else:
        parts.append(f"{p}: tiled / whole at the largest whole size "
                     f"{r['tiled'][p] / r['whole_ref'][p]:.2f}")
    print(f"  {r['label']:>6}: " + "; ".join(parts))

  print("\nPSNR (dB):")
  for r in rows:
    line = []
    for p, (whole, tiled) in r["out"].items():
      if whole is not None:
        whole8 = np.rint(np.clip(whole, 0, 1) * 255).astype(np.uint8)
        line.append(f"tiled vs whole {p} {psnr(tiled, whole8):.1f}")
    if r["reference"] is not None and len(r["out"]) == 2:
      line.append(f"whole bfloat16 vs float32 "
                  f"{psnr(r['out']['bfloat16'][0], r['out']['float32'][0]):.1f}")
      line.append(f"whole float32 vs TF1 graph "
                  f"{psnr(r['out']['float32'][0], r['reference'][0]):.1f}")
    elif len(r["out"]) == 2:
      line.append(f"tiled bfloat16 vs float32 "
                  f"{psnr(r['out']['bfloat16'][1], r['out']['float32'][1]):.1f}")
    print(f"  {r['label']:>6}: " + "; ".join(line))
  print("  (tiled vs whole as the uint8 that enhance writes, inf: identical; the others in "
        "float. Targets: tiled vs whole float32 >= 60, bfloat16 vs float32 >= 40 on a "
        "trained model)")

  if not args.skip_enhance:
    runs = [("12 MP", 3000, 4000, 30, 1536)]
    if not args.skip_108mp:
      runs.append(("108 MP", 9000, 12000, None, 2048))
    if args.enhance_size:
      runs = [(label, height, width, None, None)
              for label, height, width in parse_sizes(args.enhance_size)]
    print("\n`dped-tf enhance` with the defaults, one JPEG, in a subprocess:")
    with tempfile.TemporaryDirectory() as work:
      path = os.path.join(work, "g.keras")
      model.save(path)
      for label, height, width, wall_target, rss_target in runs:
        rss, elapsed, line = enhance_run(path, work, height, width)
        wall = f" (target <= {wall_target})" if wall_target else ""
        rss_goal = f" (target <= {rss_target})" if rss_target else ""
        print(f"  {label} ({width}x{height}): {elapsed:.0f} s wall{wall}, peak RSS {rss:.0f} MB"
              f"{rss_goal}; {height * width / 1e6 / elapsed:.3f} MPix/s "
              f"including start-up, decode and encode; '{line}'", flush=True)


if __name__ == "__main__":
  main()
