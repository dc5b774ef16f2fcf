"""`dped-tf evaluate`: Table-2 metrics (docs/method.md §6) of models on a phone's test patches,
by the released code's protocol and per patch."""

import os

from absl import flags
from absl import logging

from dped_tf import precision
from dped_tf.configs import RELEASED_HELP
from dped_tf.configs import check_model
from dped_tf.configs import define_phone_flag
from dped_tf.dataloaders import locate
from dped_tf.errors import DpedError
from dped_tf.fileio import atomic_write_bytes, file_digest
from dped_tf.lazy import lazy_import
from dped_tf.progress import Progress

evaluation = lazy_import("dped_tf.evaluation")
factory = lazy_import("dped_tf.modeling.factory")
executor = lazy_import("dped_tf.enhancement.executor")
released = lazy_import("dped_tf.modeling.released")

USAGE = "--phone PHONE --model MODEL"
EXAMPLE = ("dped-tf evaluate --phone sony --model runs/sony_sample/generator.keras "
           "--compare DPED=dped:sony --json eval.json")
REQUIRED = ("phone",)
RENAMED = {"tfrecords": "tfrecord_dir"}


def define_flags(fv):
  define_phone_flag(fv, "Phone whose test patches to use.")
  flags.DEFINE_string("model", None, "Generator: a .keras file (dped, johnson or srcnn) "
                      f"{RELEASED_HELP}.", flag_values=fv)
  flags.DEFINE_multi_string("compare", [], "More models for the same table: MODEL or "
                            "LABEL=MODEL (repeatable), MODEL as for --model.", flag_values=fv)
  flags.DEFINE_string("dped_dir", "data/dped", "Root of the DPED layout (left out and "
                      "without <phone>: data/sample, from `dped-tf sample`, if there).",
                      flag_values=fv)
  flags.DEFINE_string("tfrecord_dir", None, "Read the test TFRecords of this `dped-tf "
                      "prepare` folder instead of the DPED layout.", flag_values=fv)
  flags.DEFINE_integer("batch_size", 50, "Patches per step; the released code's protocol "
                       "scores each full batch (50 for Table 2's numbers).", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("limit", 0, "Evaluate the first N pairs only (0: all).", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_enum("precision", "float32", list(precision.CHOICES),
                    "Compute precision (float32 reproduces the paper's numbers).",
                    flag_values=fv)
  flags.DEFINE_string("json", None, "Also write the results as JSON here.", flag_values=fv)
  flags.DEFINE_string("csv", None, "Also write the results as CSV here.", flag_values=fv)


def model_specs(model, compare):
  """[(label, path)]: the model under its file name, then the --compare entries."""
  specs = [(os.path.splitext(os.path.basename(model))[0], model)] if model else []
  for entry in compare:
    label, sep, path = entry.partition("=")
    if not sep:
      label, path = os.path.splitext(os.path.basename(entry))[0], entry
    specs.append((label, path))
  labels = [label for label, _ in specs]
  if len(set(labels)) != len(labels):
    raise DpedError(f"two models share a label ({', '.join(labels)}); use --compare LABEL=PATH")
  return specs


def model_record(model, file):
  """What evaluate's JSON says of one model: the file read and its sha256, and the
  release's name where `--model dped:NAME` gave it."""
  record = {"path": os.path.abspath(file), "sha256": file_digest(file)}
  if released.is_name(model):
    record["release"] = model
  return record


def _source(fv, quiet=False):
  """(the folder evaluated, the sample it is or None)."""
  if fv.tfrecord_dir:
    if not os.path.isdir(fv.tfrecord_dir):
      raise DpedError(f"{fv.tfrecord_dir}: TFRecords folder not found")
    return fv.tfrecord_dir, locate.sample_of(fv.tfrecord_dir)
  source = locate.dped_dir_for(fv.dped_dir, fv.phone, fv["dped_dir"].present, quiet)
  if not os.path.isdir(source):
    raise locate.missing_data_error(source, fv.phone)
  return source, locate.sample_of(os.path.join(source, fv.phone, "tfrecords"))


def check(fv, argv):
  """The models and the data, before TensorFlow loads."""
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  specs = model_specs(fv.model, fv.compare)
  if not specs:
    raise DpedError("give a model (--model) or models to compare (--compare)")
  for _, path in specs:
    check_model(path)
  _source(fv)


def main(fv, argv):  # pylint: disable=unused-argument  (check read argv)
  specs = model_specs(fv.model, fv.compare)
  source, sample = _source(fv, quiet=True)
  models, files = {}, {}
  for label, path in specs:
    enhancer = executor.Enhancer(factory.load_generator(path), fv.precision)
    models[label] = enhancer.whole
    files[label] = released.keras_file(path) if released.is_name(path) else path
  if fv.tfrecord_dir:
    batches = evaluation.tfrecord_batches(fv.tfrecord_dir, fv.batch_size, fv.limit)
    total = evaluation.test_pair_count(fv.tfrecord_dir, limit=fv.limit)
  else:
    batches = evaluation.folder_batches(source, fv.phone, fv.batch_size, fv.limit)
    total = evaluation.test_pair_count(source, fv.phone, fv.limit)
  with Progress(total, unit="patch", label="evaluate") as bar:
    results = evaluation.evaluate(batches, models, full_batch=fv.batch_size,
                                  on_scored=bar.update)
  print(evaluation.format_table(fv.phone, results))
  if sample:
    logging.warning("the test data is the embedded sample (%s), not DPED: these numbers "
                    "are not comparable with the paper's", sample)
  record = {"source": source, "sample": sample,
            "precision": {"requested": fv.precision, "used": precision.resolve(fv.precision)},
            "models": {label: model_record(path, files[label]) for label, path in specs}}
  for path, text in ((fv.json, lambda: evaluation.to_json(fv.phone, record, results)),
                     (fv.csv, lambda: evaluation.to_csv(fv.phone, results))):
    if path:
      atomic_write_bytes(path, text().encode())
      print(f"Wrote {path}")
  return 0
