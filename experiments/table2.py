"""Table 2 of the paper: several trained models on one phone's test patches, in the
paper's layout (rows: phone; columns: methods; cells: PSNR dB / SSIM).

    python experiments/table2.py --phone sony --dped_dir data/dped \\
        --model "Dong et al.=runs/srcnn/generator.keras" \\
        --model "Johnson et al.=runs/johnson/generator.keras" \\
        --model "DPED=runs/sony/generator.keras" --out runs/table2_sony

Models are what `dped-tf train` writes (`--model dped|srcnn|johnson`); they are all run
in float32 and scored by both protocols of `dped-tf evaluate` (dped_tf.metrics.TestMetrics,
docs/method.md §6), next to the unprocessed phone patches. The Table-2 layout shows the
released code's protocol (batch-MSE PSNR and MS-SSIM over full batches of 50: what the
published numbers are) with the published row under it; the per-patch means follow in a
table of their own. Writes `<out>/table2.md`, `.csv` and `.json`.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# docs/method.md §6 (second paper version): PSNR dB / SSIM.
PUBLISHED = {
    "iphone": {"APE": (17.28, 0.8631), "Dong et al.": (19.27, 0.8992),
               "Johnson et al.": (20.32, 0.9161), "DPED": (20.08, 0.9201)},
    "blackberry": {"APE": (18.91, 0.8922), "Dong et al.": (18.89, 0.9134),
                   "Johnson et al.": (20.11, 0.9298), "DPED": (20.07, 0.9328)},
    "sony": {"APE": (19.45, 0.9168), "Dong et al.": (21.21, 0.9382),
             "Johnson et al.": (21.33, 0.9434), "DPED": (21.81, 0.9437)},
}
PHONE_NAMES = {"iphone": "iPhone", "blackberry": "BlackBerry", "sony": "Sony"}


def load_callable(path):
  """A trained model (.keras: any generator) as a float32 batch -> batch function, loaded
  and run as `dped-tf evaluate` does."""
  # pylint: disable=import-outside-toplevel
  from dped_tf.enhancement.executor import Enhancer
  from dped_tf.modeling.generator import load_generator
  return Enhancer(load_generator(path), "float32").whole


def _cell(psnr, ssim):
  return "n/a" if psnr is None else f"{psnr:.2f} / {ssim:.4f}"


def markdown(phone, results):
  """The paper's layout (one row per phone, one column per method): the released code's
  protocol beside the published numbers, then the per-patch protocol."""
  methods = list(results)
  published = PUBLISHED[phone]
  first = next(iter(results.values()))
  lines = [f"Released code's protocol (what Table 2 reports): PSNR dB of each full batch of "
           f"{first['batch_size']} patches' MSE / the batch's MS-SSIM, averaged over "
           f"{first['full_batches']} full batches.", "",
           "| phone | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|",
           f"| {PHONE_NAMES[phone]} (this run) | " + " | ".join(
               _cell(r["released_psnr"], r["released_ms_ssim"]) for r in results.values())
           + " |",
           f"| {PHONE_NAMES[phone]} (published) | " + " | ".join(
               _cell(*published[m]) if m in published else "-" for m in methods) + " |",
           "", "Published (paper, Table 2, DPED test patches), every method:", "",
           "| phone | " + " | ".join(published) + " |", "|---" * (len(published) + 1) + "|",
           f"| {PHONE_NAMES[phone]} | " + " | ".join(
               _cell(p, s) for p, s in published.values()) + " |",
           "", f"Per-patch protocol (not comparable with the published numbers): mean PSNR dB"
           f" / SSIM over {first['patches']} patches.", "",
           "| phone | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|",
           f"| {PHONE_NAMES[phone]} | " + " | ".join(
               _cell(r["psnr"], r["ssim"]) for r in results.values()) + " |"]
  return "\n".join(lines) + "\n"


def run(phone, models, batches, full_batch=50):
  """{label: metrics} of the unprocessed phone patches and of `models` {label: path}."""
  from dped_tf import evaluation  # pylint: disable=import-outside-toplevel
  callables = {label: load_callable(path) for label, path in models.items()}
  results = evaluation.evaluate(batches, callables, full_batch)
  return {("phone (unprocessed)" if k == evaluation.BASELINE else k): v
          for k, v in results.items()}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--phone", required=True, choices=sorted(PUBLISHED))
  parser.add_argument("--model", action="append", required=True,
                      help="LABEL=PATH or PATH (repeatable), in column order")
  source = parser.add_mutually_exclusive_group()
  source.add_argument("--dped_dir", default="data/dped")
  source.add_argument("--tfrecords", default=None)
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--limit", type=int, default=0)
  parser.add_argument("--out", default=None, help="folder for table2.md/.csv/.json")
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  # pylint: disable=import-outside-toplevel
  from dped_tf import evaluation
  from dped_tf.commands.evaluate import model_specs
  models = dict(model_specs(None, args.model))
  if args.tfrecords:
    source_name = args.tfrecords
    batches = evaluation.tfrecord_batches(args.tfrecords, args.batch_size, args.limit)
  else:
    source_name = args.dped_dir
    batches = evaluation.folder_batches(args.dped_dir, args.phone, args.batch_size,
                                        args.limit)
  results = run(args.phone, models, batches, args.batch_size)
  table = markdown(args.phone, results)
  print(table)
  if args.out:
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "table2.md"), "w") as f:
      f.write(f"Test patches: {source_name}\n\n{table}")
    with open(os.path.join(args.out, "table2.csv"), "w") as f:
      f.write(evaluation.to_csv(args.phone, results))
    with open(os.path.join(args.out, "table2.json"), "w") as f:
      json.dump({"phone": args.phone, "source": source_name, "results": results}, f,
                indent=1)
  return results


if __name__ == "__main__":
  main()
