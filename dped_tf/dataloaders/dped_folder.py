"""The DPED patch release layout (docs/method.md §5) and a scan that finds its aligned pairs."""

import dataclasses
import os
import re

from dped_tf.configs import check_phone
from dped_tf.errors import DpedError

_INDEX = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)


def split_dirs(dped_dir, phone, split):
  """(phone folder, DSLR folder) of `split` ("train" or "test") for `phone`."""
  try:
    check_phone(phone)
  except ValueError as e:
    raise DpedError(str(e)) from None
  root = os.path.join(dped_dir, phone)
  base = (os.path.join(root, "training_data") if split == "train"
          else os.path.join(root, "test_data", "patches"))
  return os.path.join(base, phone), os.path.join(base, "canon")


def full_size_dir(dped_dir, phone):
  return os.path.join(dped_dir, phone, "test_data", "full_size_test_images")


@dataclasses.dataclass
class PairScan:
  """Aligned pairs found in one split, and what was set aside."""
  pairs: list           # [(index, phone_path, dslr_path)], sorted by index
  unpaired: list        # paths with no partner of the same index
  ignored: list         # files whose names are not <index>.jpg


def scan_pairs(dped_dir, phone, split):
  """Pairs `<i>.jpg` of the phone and canon folders of one split (docs/method.md §5)."""
  phone_dir, dslr_dir = split_dirs(dped_dir, phone, split)
  for d in (phone_dir, dslr_dir):
    if not os.path.isdir(d):
      raise DpedError(f"{d}: DPED folder not found (expected the layout "
                      f"<dped_dir>/{phone}/training_data/{{{phone},canon}}/<i>.jpg)")
  listed, ignored = [], []
  for d in (phone_dir, dslr_dir):
    found = {}
    for name in os.listdir(d):
      m = _INDEX.match(name)
      if m:
        index = int(m.group(1))
        if index in found:
          raise DpedError(f"{os.path.join(d, name)}: index {index} also used by "
                          f"{found[index]}")
        found[index] = os.path.join(d, name)
      else:
        ignored.append(os.path.join(d, name))
    listed.append(found)
  phones, dslrs = listed
  common = sorted(phones.keys() & dslrs.keys())
  unpaired = sorted([phones[i] for i in phones.keys() - dslrs.keys()]
                    + [dslrs[i] for i in dslrs.keys() - phones.keys()])
  return PairScan([(i, phones[i], dslrs[i]) for i in common], unpaired, sorted(ignored))
