"""Train for your own phone, measured: a new simulated camera, trained from scratch and
fine-tuned from another phone's model under the same small budget.

    python experiments/own_phone.py [--out runs/own_phone] [--iterations 300]

The data is the embedded sample (scikit-image photos, `dped-tf sample`), NOT DPED: the
source phone is the simulated `sony` camera, the new phone `myphone` is the simulated
`midrange` camera, which is none of the three DPED phones. Every run uses the `demo` loss
preset (color + pixel MSE; no VGG-19 content term and no critic, so no VGG weights are
needed: `--vgg_weights none`), 64x64 patches, batch 8, float32, the same iterations:

1. `sony`: trained from the reference initialisation (the model to start from);
2. `myphone` from scratch: the reference initialisation;
3. `myphone` fine-tuned: `--init_from` the `sony` model.

Then `dped-tf evaluate` scores the unprocessed phone patches, the `sony` model as it is,
and both `myphone` models on the `myphone` test patches by both protocols (docs/method.md
§6). Writes `<out>/report.md` and `<out>/evaluation.json`. A rerun reuses finished runs.
"""

import argparse
import json
import os
import subprocess
import sys

from dped_tf.precision import cpu_model

CLI = [sys.executable, "-m", "dped_tf.cli"]
SOURCE, NEW = ("sony", "sony"), ("myphone", "midrange")  # (phone name, simulated camera)


def dped_tf(*args):
  print("$ dped-tf " + " ".join(args), flush=True)
  subprocess.run(CLI + list(args), check=True)


def make_sample(data, phone, camera, args):
  if not os.path.isfile(os.path.join(data, phone, "tfrecords", "meta.json")):
    dped_tf("sample", "--phone", phone, "--camera", camera, "--out", data, "--patch_size",
            str(args.patch_size), "--train_patches", str(args.train_patches),
            "--test_patches", str(args.test_patches), "--overwrite")
  return os.path.join(data, phone, "tfrecords")


def train(records, phone, model_dir, args, *extra):
  dped_tf("train", "--phone", phone, "--tfrecord_dir", records, "--model_dir", model_dir,
          "--preset", "demo", "--vgg_weights", "none", "--batch_size", str(args.batch_size),
          "--patch_size", str(args.patch_size), "--iterations", str(args.iterations),
          "--eval_every", str(args.iterations), "--checkpoint_every", str(args.iterations),
          "--learning_rate", str(args.learning_rate), "--precision", "float32", *extra)
  return os.path.join(model_dir, "generator.keras")


def last_metrics(model_dir):
  with open(os.path.join(model_dir, "metrics.jsonl")) as f:
    return json.loads(f.read().splitlines()[-1])


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--out", default="runs/own_phone")
  parser.add_argument("--iterations", type=int, default=300)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--patch_size", type=int, default=64)
  parser.add_argument("--learning_rate", type=float, default=5e-4)
  parser.add_argument("--train_patches", type=int, default=3000)
  parser.add_argument("--test_patches", type=int, default=300)
  args = parser.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  data = os.path.join(args.out, "data")
  source_records = make_sample(data, *SOURCE, args)
  new_records = make_sample(data, *NEW, args)
  source_model = train(source_records, SOURCE[0], os.path.join(args.out, "sony"), args)
  scratch = train(new_records, NEW[0], os.path.join(args.out, "myphone_scratch"), args)
  finetuned = train(new_records, NEW[0], os.path.join(args.out, "myphone_finetuned"), args,
                    "--init_from", source_model)
  out_json = os.path.join(args.out, "evaluation.json")
  dped_tf("evaluate", "--phone", NEW[0], "--tfrecords", new_records, "--json", out_json,
          "--compare", f"sony model, not fine-tuned={source_model}",
          "--compare", f"myphone from scratch={scratch}",
          "--compare", f"myphone fine-tuned from sony={finetuned}")
  with open(out_json) as f:
    results = json.load(f)["results"]
  from dped_tf import evaluation  # pylint: disable=import-outside-toplevel
  seconds = {name: last_metrics(os.path.join(args.out, name))["seconds_per_iteration"]
             for name in ("sony", "myphone_scratch", "myphone_finetuned")}
  report = "\n".join([
      f"# Own phone: simulated `{NEW[1]}` camera as `{NEW[0]}`, fine-tuned from `{SOURCE[0]}`",
      "", f"CPU: {cpu_model()} x {os.cpu_count()}; seconds per iteration: " + ", ".join(
          f"{name} {value:.2f}" for name, value in seconds.items()) + ".",
      "", "DATA: the embedded sample (scikit-image photos through simulated cameras), not "
      "DPED. VGG fallback: `--vgg_weights none` (random weights), unused in training: the "
      "loss preset `demo` is color + pixel MSE (content weight 0, no critic). "
      f"Budget per run: {args.iterations} iterations, batch {args.batch_size} of "
      f"{args.patch_size}x{args.patch_size}, learning rate {args.learning_rate}, float32; "
      f"the fine-tuned model adds its {args.iterations} to the sony model's.", "",
      evaluation.format_markdown(results), ""])
  with open(os.path.join(args.out, "report.md"), "w") as f:
    f.write(report)
  print(report)


if __name__ == "__main__":
  main()
