"""`dped-tf align`: phone + DSLR photos -> DPED-layout patch pairs and TFRecords (docs/method.md §5)."""

import os

from absl import flags

from dped_tf.configs import define_phone_flag
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.progress import Progress

align = lazy_import("dped_tf.dataloaders.align")
alignment = lazy_import("dped_tf.dataloaders.alignment")
tfrecords = lazy_import("dped_tf.dataloaders.tfrecords")
pipelines = lazy_import("dped_tf.pipelines")
build_dataset = lazy_import("dped_tf.pipelines.build_dataset")

USAGE = "(--phone_dir FOLDER --dslr_dir FOLDER | --pairs_csv CSV) --phone PHONE --dped_dir ROOT"
EXAMPLE = ("dped-tf align --phone_dir photos/phone --dslr_dir photos/dslr --phone myphone "
           "--dped_dir data/own")
REQUIRED = ("phone", "dped_dir")
RENAMED = {"out": "dped_dir", "tfrecords": "write_tfrecords"}


def define_flags(fv):
  flags.DEFINE_string("phone_dir", None, "Folder of phone photos (paired with --dslr_dir by "
                      "file name without extension).", flag_values=fv)
  flags.DEFINE_string("dslr_dir", None, "Folder of DSLR photos.", flag_values=fv)
  flags.DEFINE_string("pairs_csv", None, "Instead of the folders: a CSV with columns phone,"
                      "dslr[,split] (paths relative to the CSV).", flag_values=fv)
  define_phone_flag(fv, "Phone folder name of the DPED layout.")
  flags.DEFINE_string("dped_dir", None, "Root of the DPED layout to write: "
                      "<dped_dir>/<phone>/{training_data,test_data,tfrecords} and "
                      "align_report.json.", flag_values=fv)
  flags.DEFINE_integer("patch_size", 100, "Patch side in px.", lower_bound=8, flag_values=fv)
  flags.DEFINE_integer("search_radius", 4, "Largest shift (px, each way) of the phone window "
                       "when maximising NCC.", lower_bound=0, flag_values=fv)
  flags.DEFINE_float("min_ncc", 0.9, "Keep only patch pairs with a higher NCC.",
                     flag_values=fv)
  flags.DEFINE_float("ratio", 0.75, "SIFT ratio-test threshold.", lower_bound=0.0,
                     upper_bound=1.0, flag_values=fv)
  flags.DEFINE_integer("min_matches", 20, "Skip a pair with fewer matches or RANSAC inliers.",
                       lower_bound=4, flag_values=fv)
  flags.DEFINE_integer("detect_size", 1600, "SIFT runs on photos shrunk to this longest "
                       "side.", lower_bound=64, flag_values=fv)
  flags.DEFINE_float("test_fraction", 0.1, "Share of the photos (not patches) that go to "
                     "the test split, unless the CSV says.", lower_bound=0.0, upper_bound=1.0,
                     flag_values=fv)
  flags.DEFINE_integer("seed", 0, "Seed of the train/test split.", flag_values=fv)
  flags.DEFINE_integer("workers", 0, "Photos aligned at once (0: one per CPU core).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_integer("pairs_per_shard", 2000, "Pairs per TFRecord shard.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_bool("write_tfrecords", True, "Also convert the patches to TFRecords.",
                    flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing <dped_dir>/<phone>.",
                    flag_values=fv)
  flags.DEFINE_bool("beam", False, "Run as an Apache Beam pipeline (the beam extra) straight "
                    "to <dped_dir>/<phone>/tfrecords (no patch folders), "
                    "align_report.json and the full-size test photos. DirectRunner with one "
                    "worker per core unless Beam options after -- say otherwise "
                    "(-- --runner=... --direct_num_workers=N).", flag_values=fv)


def _number(value, fmt):
  return "-" if value is None else format(value, fmt)


def print_report(report):
  print(f"{'photo':<24} {'split':<5} {'matches':>7} {'inliers':>7} {'reproj':>7} "
        f"{'kept':>5} {'rej':>5} {'out':>4}  note")
  for p in report["photos"]:
    print(f"{p['name'][:24]:<24} {p['split']:<5} {p['matches']:>7} {p['inliers']:>7} "
          f"{_number(p['reprojection_px'], '.2f'):>7} {p['kept']:>5} {p['rejected_ncc']:>5} "
          f"{p['outside']:>4}  {'SKIPPED: ' if p['status'] == 'skipped' else ''}{p['reason']}")


def _main_beam(fv, argv, pairs, cfg):
  """`--beam`: the pairs through `dped_tf.pipelines.build_dataset`; `argv`: Beam's options."""
  pipelines.require_beam()
  report, counts = build_dataset.run(pairs, fv.dped_dir, fv.phone, cfg, argv, fv.overwrite,
                                     os.path.abspath(fv.pairs_csv or fv.phone_dir),
                                     fv.pairs_per_shard)
  print_report(report)
  root = os.path.join(fv.dped_dir, fv.phone)
  patches = report["patches"]
  print(f"{counts['aligned']} photo pairs aligned, {counts['skipped']} skipped "
        f"({counts['failed']} unreadable); patch pairs: {patches['train']} train, "
        f"{patches['test']} test, in {os.path.join(root, 'tfrecords')} "
        f"(report: {os.path.join(root, align.REPORT)})")
  if not (patches["train"] and patches["test"]):
    print("a split has no patch pairs: add photo pairs, set --test_fraction, or give "
          "splits in --pairs_csv")
  return 0


def check(fv, argv):
  """The arguments and the inputs, before TensorFlow loads."""
  if argv and not (fv.beam and all(a.startswith("--") for a in argv)):
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if bool(fv.pairs_csv) == bool(fv.phone_dir or fv.dslr_dir):
    raise DpedError("give either --pairs_csv or both --phone_dir and --dslr_dir")
  if not fv.pairs_csv and not (fv.phone_dir and fv.dslr_dir):
    raise DpedError("--phone_dir and --dslr_dir go together")
  if fv.beam and not fv.write_tfrecords:
    raise DpedError("--beam writes TFRecords only (drop --nowrite_tfrecords)")
  for given in (fv.phone_dir, fv.dslr_dir):
    if given and not os.path.isdir(given):
      raise DpedError(f"{given}: photo folder not found")


def main(fv, argv):
  pairs, unmatched = align.find_pairs(fv.phone_dir, fv.dslr_dir, fv.pairs_csv)
  for path in unmatched:
    print(f"no partner, ignored: {path}")
  pairs = align.assign_splits(pairs, fv.test_fraction, fv.seed)
  cfg = alignment.AlignConfig(patch_size=fv.patch_size, search_radius=fv.search_radius,
                              min_ncc=fv.min_ncc, ratio=fv.ratio,
                              min_matches=fv.min_matches, detect_size=fv.detect_size)
  print(f"aligning {len(pairs)} photo pairs")
  if fv.beam:
    return _main_beam(fv, argv, pairs, cfg)
  report = align.align_photos(pairs, fv.dped_dir, fv.phone, cfg, fv.workers or None,
                              fv.overwrite, Progress)
  print_report(report)
  root = os.path.join(fv.dped_dir, fv.phone)
  skipped = sum(p["status"] == "skipped" for p in report["photos"])
  counts = report["patches"]
  print(f"{len(pairs) - skipped} photo pairs aligned, {skipped} skipped; patch pairs: "
        f"{counts['train']} train, {counts['test']} test, in {root} "
        f"(report: {os.path.join(root, align.REPORT)})")
  if not fv.write_tfrecords:
    return 0
  if not (counts["train"] and counts["test"]):
    print("no TFRecords written: they need patches in both splits (add photo pairs, set "
          "--test_fraction, or give splits in --pairs_csv)")
    return 0
  out = os.path.join(root, "tfrecords")
  tfrecords.convert_dped_folder(fv.dped_dir, fv.phone, out, fv.patch_size, fv.pairs_per_shard,
                                progress=Progress)
  print(f"TFRecords in {out}")
  return 0
