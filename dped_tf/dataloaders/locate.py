"""Where a command's data is: the DPED layout at `--dped_dir`, or the embedded sample that
`dped-tf sample` writes to `data/sample` (docs/method.md §5). No TensorFlow here."""

import json
import os

from absl import logging

from dped_tf.errors import DpedError

SAMPLE_DIR = "data/sample"  # `dped-tf sample`'s default --out


def sample_of(tfrecord_dir):
  """The embedded sample's description in `tfrecord_dir/meta.json`; None for other data
  (or none)."""
  try:
    with open(os.path.join(tfrecord_dir, "meta.json")) as f:
      return json.load(f).get("sample")
  except (OSError, ValueError):
    return None


def dped_dir_for(dped_dir, phone, given, quiet=False):
  """`dped_dir`, unless it was not `given` (the default), holds nothing for `phone`, and
  `dped-tf sample` has made a sample for `phone` in `SAMPLE_DIR`: then `SAMPLE_DIR`,
  with a warning (unless `quiet`: said already) that the data is the embedded sample."""
  sample = os.path.join(SAMPLE_DIR, phone)
  if given or os.path.exists(os.path.join(dped_dir, phone)) or not os.path.isdir(sample):
    return dped_dir
  if not quiet:
    logging.warning("%s: no DPED data; using the EMBEDDED SAMPLE in %s (made by `dped-tf "
                    "sample`, not DPED; --dped_dir to choose)", os.path.join(dped_dir, phone),
                    SAMPLE_DIR)
  return SAMPLE_DIR


def missing_data_error(dped_dir, phone, tfrecord_dir=None):
  """The DpedError of a command that found no data, naming the ways to get some."""
  records = f" (and no TFRecords in {tfrecord_dir})" if tfrecord_dir else ""
  return DpedError(f"{dped_dir}: dataset folder not found{records}; get DPED (README: "
                   f"Reproduce the paper), or make the embedded sample with `dped-tf sample "
                   f"--phone {phone}` and pass --dped_dir {SAMPLE_DIR}")
