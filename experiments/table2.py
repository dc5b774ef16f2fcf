"""Table 2 of the paper: several trained models on one phone's test patches, in the
paper's layout (rows: phone; columns: methods; cells: PSNR dB / SSIM).

    python experiments/table2.py --phone sony --dped_dir data/dped \\
        --model "Dong et al.=runs/srcnn/generator.keras" \\
        --model "Johnson et al.=runs/johnson/generator.keras" \\
        --model "DPED=runs/sony/generator.keras" --out runs/table2_sony

Models are what `dped-tf train` writes (`--architecture dped|srcnn|johnson`), or the authors'
released ones by name (`--model "DPED (released)=dped:sony"`, downloaded once into Keras'
cache: README, "Released models"). `dped-tf evaluate`
runs them all in float32 and scores them by both protocols (docs/method.md §6), next to
the unprocessed phone patches; this script only lays out what it wrote. The Table-2
layout shows the released code's protocol (batch-MSE PSNR and MS-SSIM over full batches
of 50: what the published numbers are) with the published row under it; the per-patch
means follow in a table of their own. Writes `<out>/table2.md`, and `evaluate`'s own
`.csv` and `.json` as `<out>/table2.csv` and `table2.json`.
"""

import argparse
import os
import tempfile

from orchestration import Steps

from dped_tf import fileio

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


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--phone", required=True, choices=sorted(PUBLISHED))
  parser.add_argument("--model", action="append", required=True,
                      help="LABEL=MODEL or MODEL (repeatable), in column order; MODEL: a "
                      ".keras file or dped:iphone|blackberry|sony (the authors' released model)")
  source = parser.add_mutually_exclusive_group()
  source.add_argument("--dped_dir", default="data/dped")
  source.add_argument("--tfrecord_dir", default=None,
                      help="test TFRecords of a `dped-tf prepare` folder instead")
  parser.add_argument("--batch_size", type=int, default=50)
  parser.add_argument("--limit", type=int, default=0)
  parser.add_argument("--out", default=None, help="folder for table2.md/.csv/.json")
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  source = args.tfrecord_dir or args.dped_dir
  with tempfile.TemporaryDirectory() as scratch:
    out = args.out or scratch
    os.makedirs(out, exist_ok=True)
    results = Steps().evaluate(
        args.phone, args.model,
        os.path.join(out, "table2.json"), tfrecords=args.tfrecord_dir, dped_dir=args.dped_dir,
        csv=os.path.join(out, "table2.csv"), batch_size=args.batch_size, limit=args.limit)
  table = markdown(args.phone, results)
  print(table)
  if args.out:
    fileio.atomic_write_bytes(os.path.join(args.out, "table2.md"),
                              f"Test patches: {source}\n\n{table}".encode())
  return results


if __name__ == "__main__":
  main()
