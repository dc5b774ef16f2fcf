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

from dped_tf import evaluation
from dped_tf.precision import cpu_model
from orchestration import Steps, write_report

SOURCE, NEW = ("sony", "sony"), ("myphone", "midrange")  # (phone name, simulated camera)
RUNS = ("sony", "myphone_scratch", "myphone_finetuned")


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
  steps = Steps()
  data = os.path.join(args.out, "data")
  source_records, new_records = (
      steps.sample(data, phone, args.patch_size, args.train_patches, args.test_patches,
                   camera, reuse=True) for phone, camera in (SOURCE, NEW))
  budget = dict(iterations=args.iterations, batch_size=args.batch_size,
                patch_size=args.patch_size, learning_rate=args.learning_rate)
  source_model, _ = steps.train(source_records, SOURCE[0], os.path.join(args.out, RUNS[0]),
                                **budget)
  scratch, _ = steps.train(new_records, NEW[0], os.path.join(args.out, RUNS[1]), **budget)
  finetuned, _ = steps.train(new_records, NEW[0], os.path.join(args.out, RUNS[2]), **budget,
                             extra=("--init_from", source_model))
  results = steps.evaluate(NEW[0], [f"sony model, not fine-tuned={source_model}",
                                    f"myphone from scratch={scratch}",
                                    f"myphone fine-tuned from sony={finetuned}"],
                           os.path.join(args.out, "evaluation.json"), tfrecords=new_records)
  seconds = {name: last_metrics(os.path.join(args.out, name))["seconds_per_iteration"]
             for name in RUNS}
  write_report(args.out, "\n".join([
      f"# Own phone: simulated `{NEW[1]}` camera as `{NEW[0]}`, fine-tuned from `{SOURCE[0]}`",
      "", f"CPU: {cpu_model()} x {os.cpu_count()}; seconds per iteration: " + ", ".join(
          f"{name} {value:.2f}" for name, value in seconds.items()) + ".",
      "", "DATA: the embedded sample (scikit-image photos through simulated cameras), not "
      "DPED. VGG fallback: `--vgg_weights none` (random weights), unused in training: the "
      "loss preset `demo` is color + pixel MSE (content weight 0, no critic). "
      f"Budget per run: {args.iterations} iterations, batch {args.batch_size} of "
      f"{args.patch_size}x{args.patch_size}, learning rate {args.learning_rate}, float32; "
      f"the fine-tuned model adds its {args.iterations} to the sony model's.", "",
      evaluation.format_markdown(results), ""]))


if __name__ == "__main__":
  main()
