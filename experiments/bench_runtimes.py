"""Every export runtime and precision side by side in one run (docs/serving.md; README,
"Ship it: export formats").

Exports the DPED generator and an SRCNN (the PIRM 2018 baseline) with `dped-tf export`'s
library calls, then measures each runtime in its own subprocess (so that the peak RSS is
the runtime's own): Keras float32 and bfloat16, ONNX Runtime, OpenVINO (f32 and bf16
hints), LiteRT float32, float16, dynamic_int8 and int8 (calibrated on the embedded
sample's training patches). At 1280x720 and 1 MP (1024x1024) of a real photo, whole image:
MPix/s as a ratio to Keras float32, peak RSS, PSNR/SSIM against Keras float32
(`dped_tf.metrics`); for each precision also PSNR/SSIM on held-out patches of the sample's
test photo and the file size. The PIRM 2018 check: 1280x720 within 3.5 GB of RAM, runtime
as a ratio to SRCNN in the same runtime. Prints the CPU model.

  python experiments/bench_runtimes.py [--model G.keras] [--repeats 2] [--threads 2]
      [--sizes 720x1280,1024x1024]

Without --model the DPED generator has He-scaled random weights (dped_tf/testing/models.py)
and the script says so: speed and memory do not depend on the weights, the PSNR of
reduced precisions (bfloat16, float16, int8) does: pass a trained or imported generator
(`dped-tf import-checkpoint`) for those rows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from dped_tf.serving import runtimes  # noqa: E402  (light: each runtime imported on use)

# (label, runtime, precision). The first is the reference.
RUNS = (("Keras float32", "keras", "float32"), ("Keras bfloat16", "keras", "bfloat16"),
        ("ONNX Runtime", "onnx", "float32"), ("OpenVINO f32", "openvino", "f32"),
        ("OpenVINO bf16", "openvino", "bf16"), ("LiteRT float32", "litert", "float32"),
        ("LiteRT float16", "litert", "float16"), ("LiteRT dynamic_int8", "litert", "dynamic_int8"),
        ("LiteRT int8", "litert", "int8"))
BASELINE_RUNS = ("Keras float32", "ONNX Runtime", "OpenVINO f32", "LiteRT float32")
PIRM_SIZE, PIRM_RAM_GB = (720, 1280), 3.5


def worker(args):
  """In a fresh process: load one file in one runtime, run each input once untimed, then
  best of `repeats`; saves the outputs, prints seconds per input and the peak RSS."""
  inputs = np.load(args.inputs)
  if args.runtime == "keras":
    from dped_tf import precision  # TF only in the Keras worker
    from dped_tf.modeling.factory import load_generator
    run = runtimes.keras_runner(precision.with_precision(load_generator(args.path),
                                                         args.precision))
  elif args.runtime == "onnx":
    run = runtimes.onnx_runner(args.path, args.threads)
  elif args.runtime == "openvino":
    run = runtimes.openvino_runner(args.path, args.precision, args.threads)
  else:
    run = runtimes.litert_runner(args.path, args.threads)
  outputs, times = {}, {}
  for name in inputs.files:
    x = inputs[name]
    outputs[name] = run(x)
    times[name] = float("inf")
    for _ in range(args.repeats if name.startswith("size") else 0):
      start = time.perf_counter()
      run(x)
      times[name] = min(times[name], time.perf_counter() - start)
  np.savez(args.outputs, **outputs)
  with open("/proc/self/status") as f:  # VmHWM: this process's own peak (ru_maxrss counts
    rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))  # the parent's)
  print(json.dumps({"seconds": {k: v for k, v in times.items() if v < float("inf")},
                    "rss": rss}))


def measure(path, runtime, prec, inputs, outputs, args):
  cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--runtime", runtime,
         "--precision", prec, "--path", path, "--inputs", inputs, "--outputs", outputs,
         "--repeats", str(args.repeats), "--threads", str(args.threads)]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise SystemExit(f"{runtime} {prec}: failed: {proc.stderr.strip().splitlines()[-3:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1]), dict(np.load(outputs))


def export_all(generator, srcnn, folder, model_path):
  """label -> (path, file size) for DPED; label -> path for SRCNN's float32 runs."""
  from dped_tf.serving import formats, quantization
  calibration, source = quantization.calibration_patches(None, 32)
  print(f"int8 calibrated on {len(calibration)} patches of {source}")
  files = {"Keras float32": (model_path, os.path.getsize(model_path)),
           "Keras bfloat16": (model_path, os.path.getsize(model_path))}
  for fmt, label in (("onnx", "ONNX Runtime"), ("openvino", "OpenVINO")):
    ((_, written),) = formats.export_files(generator, os.path.join(folder, "dped"), fmt).items()
    if fmt == "onnx":
      files[label] = written
    else:
      files["OpenVINO f32"] = files["OpenVINO bf16"] = written
  litert = formats.export_files(generator, os.path.join(folder, "dped"), "litert",
                                ("float32", "float16", "dynamic_int8", "int8"), calibration)
  for label, written in litert.items():
    files["LiteRT " + label.split()[1]] = written
  srcnn_path = os.path.join(folder, "srcnn.keras")
  srcnn.save(srcnn_path)
  baseline = {"Keras float32": srcnn_path}
  for fmt, label in (("onnx", "ONNX Runtime"), ("openvino", "OpenVINO f32")):
    ((_, (path, _)),) = formats.export_files(srcnn, os.path.join(folder, "srcnn"), fmt).items()
    baseline[label] = path
  baseline["LiteRT float32"] = formats.export_files(
      srcnn, os.path.join(folder, "srcnn"), "litert")["litert float32"][0]
  return files, baseline


def photo_inputs(sizes):
  """A real photo (scikit-image's chelsea, the sample's test photo) resized to each size."""
  import cv2
  from dped_tf.dataloaders import sample
  photo = sample.load_photo(sample.PHOTOS["test"][0])
  return {f"size{i}": cv2.resize(photo, (w, h), interpolation=cv2.INTER_CUBIC)[None]
          .astype(np.float32) / 255.0 for i, (h, w) in enumerate(sizes)}


def main(args):
  import tensorflow as tf  # noqa: F401  (the parent needs TF for metrics and exports)
  from dped_tf import metrics, precision
  from dped_tf.modeling.factory import load_generator
  from dped_tf.serving import quantization
  from dped_tf.testing.models import random_weights_model

  sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
  print(f"CPU: {precision.cpu_model()} ({os.cpu_count()} cores); load average at the start "
        f"{os.getloadavg()[0]:.2f} (other jobs on the machine skew the times)")
  with tempfile.TemporaryDirectory() as folder:
    if args.model:
      generator, model_path = load_generator(args.model), args.model
      print(f"DPED generator: {args.model}")
    else:
      generator = random_weights_model()
      model_path = os.path.join(folder, "dped.keras")
      generator.save(model_path)
      print("DPED generator: RANDOM WEIGHTS (He-scaled, dped_tf/testing/models.py), no "
            "trained or imported model given (--model): speed and memory hold for any "
            "weights, the PSNR of bfloat16/float16/int8 rows does NOT (it depends on the "
            "weights)")
    files, baseline = export_all(generator, random_weights_model("srcnn", seed=1), folder,
                                 model_path)
    inputs = photo_inputs(sizes)
    held = quantization.heldout_patches(16)
    sets = {key: {key: x} for key, x in inputs.items()}  # one process per size: its own RSS
    sets["held"] = {f"held{i}": p for i, p in enumerate(held)}
    for key, arrays in sets.items():
      np.savez(os.path.join(folder, f"{key}.npz"), **arrays)
    results = {}
    for label, runtime, prec in RUNS:
      runs = {key: measure(files[label][0], runtime, prec, os.path.join(folder, f"{key}.npz"),
                           os.path.join(folder, "out.npz"), args) for key in sets}
      results[label] = ({key: info for key, (info, _) in runs.items()},
                        {k: v for _, out in runs.values() for k, v in out.items()})
      print(f"  measured {label}", flush=True)
    run_of = {label: (runtime, prec) for label, runtime, prec in RUNS}
    pirm = f"size{sizes.index(PIRM_SIZE)}" if PIRM_SIZE in sizes else None
    srcnn = {label: measure(path, *run_of[label], os.path.join(folder, f"{pirm}.npz"),
                            os.path.join(folder, "srcnn_out.npz"), args)[0]
             for label, path in baseline.items()} if pirm else {}
  report(results, srcnn, files, sizes, pirm, metrics)
  print(f"load average at the end {os.getloadavg()[0]:.2f}")


def _score(metrics, got, want):
  return (float(np.mean(metrics.psnr(got, want))), float(np.mean(metrics.ssim(got, want))))


def report(results, srcnn, files, sizes, pirm, metrics):
  """Prints the side-by-side table and the PIRM 2018 check (Markdown)."""
  reference = results["Keras float32"]
  held = sorted(k for k in reference[1] if k.startswith("held"))
  header = "| runtime | file MB | " + " | ".join(
      f"{w}x{h} MPix/s (x Keras f32) | peak RSS GB | PSNR dB / SSIM" for h, w in sizes) + \
      " | held-out patches PSNR dB / SSIM |"
  print("\n" + header)
  print("|" + "---|" * (header.count("|") - 1))
  for label, (info, out) in results.items():
    cells = [label, f"{files[label][1] / 1e6:.2f}"]
    for i, (h, w) in enumerate(sizes):
      key = f"size{i}"
      seconds = info[key]["seconds"][key]
      ratio = reference[0][key]["seconds"][key] / seconds
      psnr, ssim = _score(metrics, out[key], reference[1][key])
      cells += [f"{h * w / 1e6 / seconds:.3f} ({ratio:.2f}x)", f"{info[key]['rss'] / 2**30:.2f}",
                "ref" if label == "Keras float32" else f"{psnr:.1f} / {ssim:.4f}"]
    got = np.concatenate([out[k] for k in held])
    want = np.concatenate([reference[1][k] for k in held])
    psnr, ssim = _score(metrics, got, want)
    cells.append("ref" if label == "Keras float32" else f"{psnr:.1f} / {ssim:.4f}")
    print("| " + " | ".join(cells) + " |")
  if not pirm:
    return
  h, w = PIRM_SIZE
  print(f"\nPIRM 2018 check at {w}x{h} (whole image; limit {PIRM_RAM_GB} GB of RAM):")
  print("| runtime | DPED s | SRCNN s | DPED / SRCNN | DPED peak RSS GB | within 3.5 GB |")
  print("|---|---|---|---|---|---|")
  for label, info in srcnn.items():
    dped = results[label][0][pirm]
    seconds, baseline = dped["seconds"][pirm], info["seconds"][pirm]
    gb = dped["rss"] / 2**30
    print(f"| {label} | {seconds:.2f} | {baseline:.3f} | {seconds / baseline:.1f}x | "
          f"{gb:.2f} | {'yes' if gb <= PIRM_RAM_GB else 'NO'} |")


def parse_args():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", help="trained or imported DPED generator .keras")
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--threads", type=int, default=2)
  parser.add_argument("--sizes", default="720x1280,1024x1024", help="HxW,...")
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  for name in ("runtime", "precision", "path", "inputs", "outputs"):
    parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
  return parser.parse_args()


if __name__ == "__main__":
  ARGS = parse_args()
  worker(ARGS) if ARGS.worker else main(ARGS)
