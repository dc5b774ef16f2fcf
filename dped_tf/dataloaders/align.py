"""Folders of phone + DSLR photos -> the DPED layout of aligned patch pairs (docs/method.md §5),
the job of `dped-tf align`.

Pairs come from equal file names in two folders or from a CSV; the train/test split is by
photo, never by patch; each pair is aligned by `alignment.align_pair` (in parallel over
photos), its patches written under a temporary folder, numbered in the order of the pairs
and published with `align_report.json` (per photo: matches, inliers, reprojection error,
scale, patches kept and why others were not).
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import os
import shutil

from dped_tf import fileio
from dped_tf import image_io
from dped_tf import progress as progress_lib
from dped_tf.dataloaders import alignment
from dped_tf.dataloaders import dped_folder
from dped_tf.errors import DpedError

REPORT = "align_report.json"


def _images(folder):
  if not os.path.isdir(folder):
    raise DpedError(f"{folder}: photo folder not found")
  return {os.path.splitext(n)[0]: os.path.join(folder, n) for n in sorted(os.listdir(folder))
          if n.lower().endswith(image_io.INPUT_EXTENSIONS)}


def find_pairs(phone_dir=None, dslr_dir=None, pairs_csv=None):
  """[(name, phone_path, dslr_path, split or None)] sorted by name, and the unmatched
  files. Pairs come from a CSV (columns phone, dslr and optionally split; paths relative
  to the CSV's folder) or from equal file names (without extension) in the two folders."""
  if pairs_csv:
    base = os.path.dirname(os.path.abspath(pairs_csv))
    try:
      with open(pairs_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    except OSError as e:
      raise DpedError(f"{pairs_csv}: unreadable ({e.strerror})") from None
    if not rows or not {"phone", "dslr"} <= set(rows[0]):
      raise DpedError(f"{pairs_csv}: expected a header with columns phone,dslr[,split]")
    pairs = []
    for line, row in enumerate(rows, start=2):
      paths = [os.path.join(base, row[k] or "") for k in ("phone", "dslr")]
      for path in paths:
        if not os.path.isfile(path):
          raise DpedError(f"{pairs_csv}: line {line}: {path}: file not found")
      split = (row.get("split") or "").strip() or None
      if split not in (None, "train", "test"):
        raise DpedError(f"{pairs_csv}: line {line}: split must be train or test, got {split!r}")
      pairs.append((os.path.splitext(os.path.basename(paths[0]))[0], *paths, split))
    names = [p[0] for p in pairs]
    if len(set(names)) != len(names):
      raise DpedError(f"{pairs_csv}: two pairs share a phone photo name")
    return sorted(pairs), []
  phones, dslrs = _images(phone_dir), _images(dslr_dir)
  common = sorted(phones.keys() & dslrs.keys())
  if not common:
    raise DpedError(f"{phone_dir}: no photo has a namesake in {dslr_dir}")
  unmatched = sorted([phones[n] for n in phones.keys() - dslrs.keys()]
                     + [dslrs[n] for n in dslrs.keys() - phones.keys()])
  return [(n, phones[n], dslrs[n], None) for n in common], unmatched


def assign_splits(pairs, test_fraction, seed):
  """Fills in the split of each pair (split by photo, never by patch): `test_fraction` of
  the unassigned photos, at least one when there are two or more, chosen by a seeded hash
  of their names."""
  open_names = [p[0] for p in pairs if p[3] is None]
  count = round(test_fraction * len(open_names))
  if test_fraction > 0 and len(open_names) >= 2:
    count = min(max(count, 1), len(open_names) - 1)
  rank = sorted(open_names,
                key=lambda n: hashlib.sha256(f"{seed}:{n}".encode()).hexdigest())
  test = set(rank[:count])
  return [(n, pp, dp, s or ("test" if n in test else "train")) for n, pp, dp, s in pairs]


def align_one(pair, cfg):
  """The per-pair step of `dped-tf align` and of `dped_tf.pipelines.build_dataset`: reads
  both photos of `pair` (name, phone_path, dslr_path, split) and aligns them; returns the
  PairResult (with its patches) and the phone photo's pixels (None when unreadable)."""
  images = []
  for path in pair[1:3]:
    try:
      images.append(image_io.read_rgb8(path))
    except DpedError:
      return alignment.PairResult(reason=f"unreadable image: {path}"), None
  return alignment.align_pair(*images, cfg), images[0]


def save_full_size(root, phone, pair, phone_image):
  """Writes the phone photo of a test pair into the layout's full-size test photos (the
  file itself when it is a JPEG)."""
  name, phone_path = pair[:2]
  target = os.path.join(dped_folder.full_size_dir(root, phone), f"{name}.jpg")
  if phone_path.lower().endswith((".jpg", ".jpeg")):
    shutil.copyfile(phone_path, target)
  else:
    dped_folder.write_jpeg(target, phone_image)


def report_row(pair, result):
  """The report's entry for one pair: its names, split and the result without pixels."""
  name, phone_path, dslr_path, split = pair
  return {"name": name, "phone": phone_path, "dslr": dslr_path, "split": split,
          **result.report()}


def _process(pair, tag, cfg, root, phone):
  """Aligns one pair and writes its patches; returns the result without pixels."""
  result, phone_image = align_one(pair, cfg)
  dped_folder.save_patches(root, phone, pair[3], tag, result.patches)
  if pair[3] == "test" and result.kept:
    save_full_size(root, phone, pair, phone_image)
  result.patches = []
  return result


def align_photos(pairs, out_dir, phone, cfg=alignment.AlignConfig(), workers=None,
                 overwrite=False, progress=None):
  """Aligns every pair (in parallel over photos) and writes `<out_dir>/<phone>` in the DPED
  layout with `align_report.json`; returns the report dict. `pairs` must have splits.
  `progress`: a `dped_tf.progress.Progress`-like factory to show the photos done."""
  inputs = sorted({os.path.dirname(p) for _, pp, dp, _ in pairs for p in (pp, dp)})
  final = dped_folder.check_output(out_dir, phone, inputs, overwrite)
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, f".{phone}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    dped_folder.make_layout(tmp, phone)
    with (concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool,
          progress_lib.start(progress, len(pairs), "photo", "align") as bar):
      futures = [pool.submit(_process, pair, k, cfg, tmp, phone)
                 for k, pair in enumerate(pairs)]
      for _ in concurrent.futures.as_completed(futures):
        bar.update()
    results = [f.result() for f in futures]
    counts = dped_folder.number_patches(
        tmp, phone, [(k, pair[3], r.kept) for k, (pair, r) in enumerate(zip(pairs, results))])
    report = {
        "config": dataclasses.asdict(cfg),
        "patches": counts,
        "photos": [report_row(pair, r) for pair, r in zip(pairs, results)],
    }
    with open(os.path.join(tmp, phone, REPORT), "w") as f:
      json.dump(report, f, indent=1)
    fileio.publish_dir(os.path.join(tmp, phone), final)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return report
