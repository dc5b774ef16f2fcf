"""The DPED patch release layout (docs/method.md §5): writing it (`dped-tf align` and
`dped-tf sample` do) and a scan that finds its aligned pairs."""

import dataclasses
import os
import re

from dped_tf import image_io
from dped_tf.configs import check_phone
from dped_tf.errors import DpedError

_INDEX = re.compile(r"^(\d+)\.jpe?g$", re.IGNORECASE)
JPEG_QUALITY = 95  # of the patches and full-size test photos written in the layout


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


def check_output(out_dir, phone, inputs, overwrite):
  """The final `<out_dir>/<phone>` folder; refuses to replace inputs or earlier output."""
  final = os.path.abspath(os.path.join(out_dir, phone))
  for path in inputs:
    path = os.path.abspath(path)
    if os.path.commonpath([final, path]) == final:
      raise DpedError(f"{final}: output would replace the input folder {path}")
  if os.path.exists(final) and not overwrite:
    raise DpedError(f"{final}: already exists (pass --overwrite to replace it)")
  return final


def make_layout(root, phone):
  for split in ("train", "test"):
    for d in split_dirs(root, phone, split):
      os.makedirs(d, exist_ok=True)
  os.makedirs(full_size_dir(root, phone), exist_ok=True)


def encode_jpeg(rgb):
  """uint8 RGB pixels as the bytes of a JPEG of `JPEG_QUALITY` (through `image_io`)."""
  return image_io.encode_photo(".jpg", image_io.Photo(rgb), JPEG_QUALITY)


def write_jpeg(path, rgb):
  """Writes uint8 RGB pixels as a JPEG of `JPEG_QUALITY`."""
  with open(path, "wb") as f:
    f.write(encode_jpeg(rgb))


def save_patches(root, phone, split, tag, patches):
  """Writes (phone, dslr) uint8 RGB patch pairs of one photo as `<tag>_<j>.jpg` in the
  two folders of `split`; `number_patches` gives them their final names."""
  for j, pair in enumerate(patches):
    for folder, patch in zip(split_dirs(root, phone, split), pair):
      write_jpeg(os.path.join(folder, f"{tag}_{j}.jpg"), patch)


def first_indices(photos):
  """The patch numbering of the layout: the index of each photo's first patch pair in
  its split, consecutive in the order of `photos` [(tag, split, count)]; returns
  ({tag: first index}, {split: pairs})."""
  counts, first = {"train": 0, "test": 0}, {}
  for tag, split, count in photos:
    first[tag] = counts[split]
    counts[split] += count
  return first, counts


def number_patches(root, phone, photos):
  """Renames `<tag>_<j>.jpg` to consecutive `<i>.jpg` per split, in the order of `photos`
  [(tag, split, count)] (`first_indices`); returns {split: pairs}."""
  first, counts = first_indices(photos)
  for tag, split, count in photos:
    for j in range(count):
      for folder in split_dirs(root, phone, split):
        os.replace(os.path.join(folder, f"{tag}_{j}.jpg"),
                   os.path.join(folder, f"{first[tag] + j}.jpg"))
  return counts


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
