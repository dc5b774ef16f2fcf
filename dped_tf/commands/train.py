"""`dped-tf train`: the reference DPED training procedure (docs/method.md §4)."""

import dataclasses
import os
import sys

from absl import flags

from dped_tf import config_flags, configs
from dped_tf.commands import prepare
from dped_tf.dataloaders import locate
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.progress import Progress

tf = lazy_import("tensorflow")
tfrecords = lazy_import("dped_tf.dataloaders.tfrecords")
callbacks = lazy_import("dped_tf.training.callbacks")
loop = lazy_import("dped_tf.training.loop")
run_lib = lazy_import("dped_tf.training.run")

USAGE = "--phone PHONE"
EXAMPLE = "dped-tf train --phone sony --preset cpu_sample --model_dir runs/sony_sample"
REQUIRED = ("phone",)
RENAMED = {"model": "architecture"}


def define_flags(fv):
  configs.define_phone_flag(fv, "Phone to train for.")
  flags.DEFINE_string("dped_dir", "data/dped", "Root of the DPED layout (left out and "
                      "without <phone>: data/sample, from `dped-tf sample`, if there).",
                      flag_values=fv)
  flags.DEFINE_string("tfrecord_dir", None, "TFRecords from `dped-tf prepare` (default "
                      "<dped_dir>/<phone>/tfrecords, converted on first use).", flag_values=fv)
  flags.DEFINE_string("model_dir", None, "Output folder (default runs/<phone>); one run "
                      "at a time.", flag_values=fv)
  config_flags.define_train_flags(fv)
  flags.DEFINE_bool("new_segment", False, "Resume a run with other settings (another "
                    "--preset, --init, loss weight, ...): without it they are refused; with "
                    "it run.json records them as a new segment beside the earlier ones.",
                    flag_values=fv)
  flags.DEFINE_bool("xla", False, "Compile the train step with XLA.", flag_values=fv)
  flags.DEFINE_bool("deterministic", False, "Deterministic TensorFlow ops "
                    "(tf.config.experimental.enable_op_determinism; may be slower on GPU).",
                    flag_values=fv)
  flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                    "tf.distribute strategy: one device, the GPUs of this machine, or the "
                    "machines of TF_CONFIG (every worker runs the same command; the chief "
                    "writes --model_dir).", flag_values=fv)


def _data(fv, quiet=False):
  """(DPED folder, TFRecords folder, whether the TFRecords are there)."""
  dped_dir = locate.dped_dir_for(fv.dped_dir, fv.phone,
                                 fv["dped_dir"].present or fv.tfrecord_dir, quiet)
  tfrecord_dir = fv.tfrecord_dir or prepare.default_out(dped_dir, fv.phone)
  return dped_dir, tfrecord_dir, os.path.isfile(os.path.join(tfrecord_dir, "meta.json"))


def check(fv, argv):
  """The data and the settings, before TensorFlow loads."""
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  dped_dir, tfrecord_dir, has_records = _data(fv)
  if not has_records and fv.strategy == "multi_worker":
    raise DpedError(f"{tfrecord_dir}: no TFRecords; with --strategy=multi_worker run "
                    "`dped-tf prepare` first (workers must not convert concurrently)")
  if not has_records and not os.path.isdir(dped_dir):
    raise locate.missing_data_error(dped_dir, fv.phone, tfrecord_dir)
  try:
    config_flags.train_config_from_flags(fv, phone=fv.phone)
  except ValueError as e:
    raise DpedError(str(e)) from None


def main(fv, argv):  # pylint: disable=unused-argument  (check read argv)
  dped_dir, tfrecord_dir, has_records = _data(fv, quiet=True)
  cfg = config_flags.train_config_from_flags(fv, phone=fv.phone)
  prepared = tfrecords.read_meta(tfrecord_dir).get("patch_size") if has_records else None
  if prepared and prepared != cfg.patch_size and not fv["patch_size"].present:
    print(f"Patch size {prepared} px, that of the TFRecords in {tfrecord_dir}")
    cfg = dataclasses.replace(cfg, patch_size=prepared)
  if fv.deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = run_lib.make_strategy(fv.strategy)
  with run_lib.open_run(fv.model_dir or os.path.join("runs", fv.phone), strategy) as run:
    # A folder in use, a --init_from file of another architecture or norm and unusable
    # VGG weights are refused before any time goes into data conversion, and so are
    # settings other than those of the run it resumes (without --new_segment).
    run_lib.check_settings(run, cfg, fv.new_segment)
    with strategy.scope():
      trainer, vgg_source = loop.build_trainer(cfg, warm_start_from_file=not run.resuming)
    if not has_records:
      print(f"Converting {dped_dir} ({fv.phone}) to TFRecords in {tfrecord_dir}")
      tfrecords.convert_dped_folder(dped_dir, fv.phone, tfrecord_dir, cfg.patch_size,
                                    progress=Progress)
    try:
      loop.run_training(run, trainer, vgg_source, cfg, tfrecord_dir, jit_compile=fv.xla,
                        new_segment=fv.new_segment)
    except callbacks.Preempted as e:
      print(f"dped-tf train: {e}", file=sys.stderr)
      return 128 + e.signum
    except tf.errors.DataLossError as e:
      raise DpedError(f"{tfrecord_dir}: corrupt TFRecords ({e.message.splitlines()[0]}); "
                      "convert again with `dped-tf prepare --overwrite`") from None
  return 0
