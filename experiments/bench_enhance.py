"""`dped-tf enhance` end to end vs the generator alone (docs/method.md §7), one run.

Prints the CPU model; the whole-image MPix/s of the generator on one photo (1280x720) in
this process (`Enhancer.whole`, traced beforehand); the wall time of `dped-tf enhance`
in a subprocess on one such JPEG and on a folder of N of them; the fixed cost of a
photo (wall minus generator time: Python and TensorFlow start-up, model load, tracing,
decoding, encoding); the folder's end-to-end MPix/s as a ratio to the whole-image
MPix/s, and per extra photo (start-up paid once); the decode and encode times of one
photo, which bound what overlapping them with compute could gain.

Then a profile of exact tiled inference of the same photo at the default tile side,
with its maps in RAM and then in files, from the executor's own profile
(`executor.PhaseTimes`): time in the tile graphs (split into the bare convolutions, the
instance norms and the tile moments, each timed alone over the same windows, and the
rest: residual adds, casts, slicing, halos) against storage I/O (photo reads, window
assembly from the maps, map writes) and the remaining Python.

  python experiments/bench_enhance.py [--model G.keras] [--photos 12] [--precision auto]
      [--size 720x1280]

Without --model the generator has He-scaled random weights (dped_tf/testing/models.py).
On CPUs without AMX/AVX512-BF16, bfloat16 is emulated: measure float32 there.
"""

import argparse
import collections
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from dped_tf import image_io  # noqa: E402
from dped_tf import precision  # noqa: E402
from dped_tf.enhancement import moments  # noqa: E402
from dped_tf.enhancement.executor import Enhancer  # noqa: E402
from dped_tf.enhancement.executor import PhaseTimes  # noqa: E402
from dped_tf.enhancement.memory import MemorySettings  # noqa: E402
from dped_tf.enhancement.tiles import TilePlan  # noqa: E402
from dped_tf.enhancement.tiles import core_box  # noqa: E402
from dped_tf.modeling.factory import load_generator  # noqa: E402
from dped_tf.testing.bench import run_timed  # noqa: E402
from dped_tf.testing.models import random_weights_model  # noqa: E402
from dped_tf.testing.photos import smooth_photo  # noqa: E402


def enhance_wall(inputs, model_path, out, precision_name):
  """Seconds of `dped-tf enhance INPUTS` in a fresh Python process."""
  cmd = [sys.executable, "-m", "dped_tf.cli", "enhance", *inputs, "--model", model_path,
         "--out", out, "--precision", precision_name]
  return run_timed(cmd)[0]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", help="generator .keras (default: random He-scaled weights)")
  parser.add_argument("--photos", type=int, default=12, help="photos in the folder")
  parser.add_argument("--precision", default="auto", help="as enhance's --precision")
  parser.add_argument("--repeats", type=int, default=2, help="best of N generator runs")
  parser.add_argument("--size", default="720x1280", help="photo size, HxW")
  args = parser.parse_args()
  height, width = (int(v) for v in args.size.lower().split("x"))
  native = precision.cpu_has_bf16()
  print(f"CPU: {precision.cpu_model()}, {os.cpu_count()} cores; bfloat16: "
        + ("native" if native else "EMULATED (no AMX/AVX512-BF16): bf16 figures meaningless"))
  mp = height * width / 1e6
  with tempfile.TemporaryDirectory() as work:
    model_path = args.model
    if not model_path:
      model_path = os.path.join(work, "g.keras")
      random_weights_model().save(model_path)
    folder = os.path.join(work, "in")
    os.makedirs(folder)
    for i in range(args.photos):
      cv2.imwrite(os.path.join(folder, f"p{i}.jpg"),
                  smooth_photo(height, width, seed=i)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    first = os.path.join(folder, "p0.jpg")

    enhancer = Enhancer(load_generator(model_path), args.precision)
    args.precision = enhancer.precision  # auto resolved
    pixels = image_io.read_photo(first).pixels
    x = pixels[None].astype(np.float32) / 255
    enhancer.whole(x)  # trace
    generator_s = float("inf")
    for _ in range(args.repeats):
      start = time.perf_counter()
      enhancer.whole(x)
      generator_s = min(generator_s, time.perf_counter() - start)
    start = time.perf_counter()
    pixels = image_io.read_photo(first).pixels
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    image_io.encode_photo(".jpg", image_io.Photo(pixels))
    encode_s = time.perf_counter() - start

    tile = MemorySettings(enhancer.working_set).tile_side()  # enhance's default
    profiles = {where: profile_tiled(enhancer, pixels, tile, work, limit)
                for where, limit in (("RAM", None), ("files", 1))}
    one_s = enhance_wall([first], model_path, os.path.join(work, "out1"), args.precision)
    folder_s = enhance_wall([folder], model_path, os.path.join(work, "outN"), args.precision)

  n = args.photos
  whole = mp / generator_s
  end_to_end = n * mp / folder_s
  per_extra = (folder_s - one_s) / (n - 1) if n > 1 else float("nan")
  print(f"model: {args.model or 'random (He-scaled) weights'}; precision {args.precision}; "
        f"{width}x{height} JPEG q92")
  print(f"generator alone (whole image, traced): {generator_s:.2f} s = {whole:.3f} MPix/s")
  print(f"decode {1e3 * decode_s:.0f} ms, encode {1e3 * encode_s:.0f} ms per photo "
        f"({(decode_s + encode_s) / generator_s:.1%} of the generator time)")
  print(f"dped-tf enhance, 1 photo: {one_s:.2f} s wall; fixed cost (wall - generator) "
        f"{one_s - generator_s:.2f} s")
  print(f"dped-tf enhance, folder of {n}: {folder_s:.2f} s wall = {end_to_end:.3f} MPix/s "
        f"= {end_to_end / whole:.2f} x whole-image")
  print(f"per extra photo in the folder: {per_extra:.2f} s = "
        f"{generator_s / per_extra:.2f} x whole-image (start-up paid once)")
  for where, profile in profiles.items():
    print_profile(profile, mp, where)


def run_layers(layers, x):
  for layer in layers:
    x = layer(x)
  return x


def profile_tiled(enhancer, pixels, tile, work, max_memory):
  """Seconds per part of `enhancer.tiled` on `pixels` (max_memory=None: its maps in RAM,
  1: in files): the executor's phases, and the bare convolutions, norms and tile moments
  timed alone over the executor's own windows."""
  out = np.empty_like(pixels)
  enhancer.tiled(pixels, out, tile, max_memory=max_memory, tmp_dir=work)  # trace
  timer = PhaseTimes()
  start = time.perf_counter()
  enhancer.tiled(pixels, out, tile, max_memory=max_memory, tmp_dir=work, timer=timer)
  totals = collections.defaultdict(float, timer.seconds)
  totals["total"] = time.perf_counter() - start
  # The same windows through the bare convolutions, the norms and the moments alone.
  convs = enhancer.model.conv_layers()
  stage_convs = [convs[0:2]] + [[convs[k + 1]] for k in range(1, 8)] + [convs[9:12]]
  norms = enhancer.model.norm_layers()
  conv_fn = [tf.function(lambda x, layers=layers: run_layers(layers, x))
             for layers in stage_convs]
  norm_fn = tf.function(lambda x, norm, mean, var: norm(x, (mean, var)))
  moments_fn = tf.function(moments.tile_moments)
  plan = TilePlan(*pixels.shape[:2], tile)
  dtype = enhancer.model.compute_dtype
  zeros64 = tf.zeros([64])
  for timing in (False, True):  # the first pass traces
    for index, stage in enumerate(enhancer.stages):
      for core in plan.tiles():
        window = plan.window(core, stage.halo)  # the executor's own windows
        y0, x0, y1, x1 = window
        x = tf.cast(tf.random.uniform([1, y1 - y0, x1 - x0, 3 if index == 0 else 64]), dtype)
        out = tf.cast(tf.random.uniform([1, y1 - y0, x1 - x0, 64]), dtype)  # a stage output
        box = tf.constant(core_box(core, window))
        start = time.perf_counter()
        conv_fn[index](x)
        mid = time.perf_counter()
        if index > 0:
          norm_fn(x, norms[index - 1], zeros64, zeros64 + 1)
        end = time.perf_counter()
        if index < len(enhancer.stages) - 1:
          moments_fn(out, box)
        stop = time.perf_counter()
        if timing:
          totals["bare conv"] += mid - start
          totals["norm"] += end - mid
          totals["tile moments"] += stop - end
  return totals


def print_profile(totals, mp, where):
  total = totals["total"]
  writes_behind = where == "files"  # a writer thread writes while the next tile computes
  io = totals["photo read"] + totals["map reads"] + (0 if writes_behind else totals["map writes"])
  graphs = totals["tile graphs"]
  rest = graphs - totals["bare conv"] - totals["norm"] - totals["tile moments"]
  print(f"tiled profile ({mp:.2f} MP, maps in {where}): {total:.2f} s = {mp / total:.3f} MPix/s")
  rows = [("tile graphs", graphs), ("  bare convolutions (timed alone)", totals["bare conv"]),
          ("  instance norms (timed alone)", totals["norm"]),
          ("  tile moments (timed alone)", totals["tile moments"]),
          ("  rest: residual adds, casts, slicing, halos", rest),
          ("storage I/O", io), ("  photo read", totals["photo read"]),
          ("  map reads (window assembly)", totals["map reads"]),
          ("  map writes" + (" (writer thread, overlapping; not in the sum)"
                              if writes_behind else ""), totals["map writes"]),
          ("other Python", total - graphs - io),
          ("  moments combined in float64", totals["moments"]),
          ("  output quantisation", totals["output"])]
  for name, secs in rows:
    print(f"  {name:<44} {secs:6.2f} s  {secs / total:6.1%}")


if __name__ == "__main__":
  main()
