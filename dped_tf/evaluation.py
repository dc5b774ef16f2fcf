"""The paper's test protocol (docs/method.md §6, Table 2): mean per-patch PSNR and SSIM, plus
MS-SSIM, over a phone's test patches, for models and for the unprocessed phone patches
(the baseline every method has to beat)."""

import csv
import io
import json

from absl import logging
import numpy as np
import tensorflow as tf

from dped_tf import metrics
from dped_tf.dataloaders import dped_folder
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError

BASELINE = "phone (unprocessed)"
METRICS = ("psnr", "ssim", "ms_ssim")


def folder_batches(dped_dir, phone, batch_size=50, limit=0):
  """(phone, dslr) float32 RGB batches of the DPED layout's test patches, decoded by
  TensorFlow as in the TFRecords reader (decoders differ by a few levels: ~0.2 dB);
  pairs with an unreadable side or another size than the first's are skipped."""
  pairs = dped_folder.scan_pairs(dped_dir, phone, "test").pairs[:limit or None]
  if not pairs:
    raise DpedError(f"{dped_folder.split_dirs(dped_dir, phone, 'test')[0]}: no test pairs")
  size, bad, batch = None, [], []
  for _, phone_path, dslr_path in pairs:
    images = [_decode(p) for p in (phone_path, dslr_path)]
    if any(im is None for im in images):
      bad.append(phone_path)
      continue
    size = size or images[0].shape
    if images[0].shape != size or images[1].shape != size:
      bad.append(phone_path)
      continue
    batch.append([im.astype(np.float32) / 255.0 for im in images])
    if len(batch) == batch_size:
      yield _stack(batch)
      batch = []
  if batch:
    yield _stack(batch)
  if bad:
    logging.warning("%d test pairs skipped (unreadable or of another size), first: %s",
                    len(bad), bad[0])


def _decode(path):
  try:
    return tf.io.decode_jpeg(tf.io.read_file(path), channels=3).numpy()
  except (tf.errors.OpError, ValueError):
    return None


def _stack(batch):
  return np.stack([p for p, _ in batch]), np.stack([d for _, d in batch])


def tfrecord_batches(tfrecord_dir, batch_size=50, limit=0):
  """(phone, dslr) float32 batches of a `dped-tf prepare` folder's test split."""
  meta = tfrecords.read_meta(tfrecord_dir)
  ds = tfrecords.make_dataset(tfrecord_dir, "test", batch_size, meta.get("patch_size", 100),
                              training=False)
  if limit:
    ds = ds.unbatch().take(limit).batch(batch_size)
  for phone, dslr in ds:
    yield phone.numpy(), dslr.numpy()


def evaluate(batches, models):
  """Mean metrics of the baseline and of each model.

  `models`: {label: callable [B, H, W, 3] -> enhanced [B, H, W, 3]}. Returns
  {label: {"psnr", "ssim", "ms_ssim", "patches"}}, the baseline first.
  """
  labels = [BASELINE, *models]
  sums = {label: np.zeros(len(METRICS)) for label in labels}
  count = 0
  for phone, dslr in batches:
    outputs = {BASELINE: phone, **{label: fn(phone) for label, fn in models.items()}}
    for label in labels:
      out = np.clip(outputs[label], 0.0, 1.0)
      sums[label] += [float(np.sum(m(out, dslr))) for m in
                      (metrics.psnr, metrics.ssim, metrics.ms_ssim)]
    count += len(phone)
  if not count:
    raise DpedError("no test patches to evaluate")
  return {label: {**dict(zip(METRICS, (sums[label] / count).tolist())), "patches": count}
          for label in labels}


def format_table(phone, results):
  """One row per method, then the same numbers in Table 2's shape (PSNR / SSIM)."""
  width = max(len(label) for label in results) + 2
  lines = [f"{'method':<{width}}{'PSNR (dB)':>10}{'SSIM':>9}{'MS-SSIM':>9}{'patches':>9}"]
  for label, r in results.items():
    lines.append(f"{label:<{width}}{r['psnr']:>10.2f}{r['ssim']:>9.4f}{r['ms_ssim']:>9.4f}"
                 f"{r['patches']:>9d}")
  cells = [f"{r['psnr']:.2f} / {r['ssim']:.4f}" for r in results.values()]
  cols = [max(len(label), len(cell)) for label, cell in zip(results, cells)]
  lines += ["", "Table 2 (PSNR dB / SSIM):",
            " | ".join(["phone".ljust(10)] + [l.ljust(c) for l, c in zip(results, cols)]),
            " | ".join([phone.ljust(10)] + [v.ljust(c) for v, c in zip(cells, cols)])]
  return "\n".join(lines)


def to_json(phone, source, results):
  return json.dumps({"phone": phone, "source": source, "results": results}, indent=1) + "\n"


def to_csv(phone, results):
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["phone", "method", *METRICS, "patches"])
  for label, r in results.items():
    writer.writerow([phone, label, *(f"{r[m]:.6f}" for m in METRICS), r["patches"]])
  return buf.getvalue()
