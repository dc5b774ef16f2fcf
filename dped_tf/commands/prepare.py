"""`dped-tf prepare`: DPED patch folders -> sharded TFRecords."""

import os

from absl import flags

from dped_tf.configs import define_phone_flag
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.progress import Progress

tfrecords = lazy_import("dped_tf.dataloaders.tfrecords")

USAGE = "--phone PHONE"
EXAMPLE = "dped-tf prepare --phone sony --dped_dir data/dped"
REQUIRED = ("phone",)
RENAMED = {"out": "tfrecord_dir"}


def define_flags(fv):
  define_phone_flag(fv, "Phone whose patches to convert.")
  flags.DEFINE_string("dped_dir", "data/dped", "Root of the DPED layout.", flag_values=fv)
  flags.DEFINE_string("tfrecord_dir", None, "TFRecords folder to write (default "
                      "<dped_dir>/<phone>/tfrecords, where train looks).", flag_values=fv)
  flags.DEFINE_integer("patch_size", 100, "Expected patch side in pixels.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("pairs_per_shard", 2000, "Pairs per TFRecord shard.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace an existing conversion.", flag_values=fv)


def default_out(dped_dir, phone):
  return os.path.join(dped_dir, phone, "tfrecords")


def check(fv, argv):
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if not os.path.isdir(fv.dped_dir):
    raise DpedError(f"{fv.dped_dir}: dataset folder not found")
  out = fv.tfrecord_dir or default_out(fv.dped_dir, fv.phone)
  if os.path.exists(os.path.join(out, "meta.json")) and not fv.overwrite:
    raise DpedError(f"{out}: already converted (pass --overwrite to redo it)")


def main(fv, argv):  # pylint: disable=unused-argument  (check read argv)
  out = fv.tfrecord_dir or default_out(fv.dped_dir, fv.phone)
  meta = tfrecords.convert_dped_folder(fv.dped_dir, fv.phone, out, fv.patch_size,
                                       fv.pairs_per_shard, progress=Progress)
  for split in tfrecords.SPLITS:
    m = meta[split]
    print(f"{split}: {m['pairs']} pairs written, {len(m['bad'])} bad, "
          f"{len(m['unpaired'])} unpaired, {len(m['ignored'])} ignored")
  print(f"TFRecords in {out}")
