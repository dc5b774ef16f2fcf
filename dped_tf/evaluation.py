"""Table 2's test (docs/method.md §6) of models and of the unprocessed phone patches (the
baseline every method has to beat) on a phone's test patches, by both protocols of
`metrics.TestMetrics`: the released code's (batch-MSE PSNR and MS-SSIM over full batches,
what Table 2 reports) and the per-patch mean PSNR and SSIM."""

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
# Result keys: the released code's protocol first (the one Table 2 reports).
METRICS = ("released_psnr", "released_ms_ssim", "psnr", "ssim")


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


def test_pair_count(source, phone=None, limit=0):
  """How many test pairs `folder_batches(source, phone, ...)` (with `phone`) or
  `tfrecord_batches(source, ...)` (without) reads at most: the total of a progress line."""
  if phone:
    count = len(dped_folder.scan_pairs(source, phone, "test").pairs)
  else:
    count = tfrecords.read_meta(source).get("test", {}).get("pairs", 0)
  return min(count, limit) if limit else count


def evaluate(batches, models, full_batch=metrics.RELEASED_BATCH, on_scored=None):
  """Both protocols for the baseline and each model.

  `models`: {label: callable [B, H, W, 3] -> enhanced [B, H, W, 3]}. `full_batch`: the
  released protocol's batch size (50 in Table 2; `batches` should hold that many).
  `on_scored`: called with each batch's number of patches once scored (progress). Returns
  {label: {released_psnr, released_ms_ssim, psnr, ssim, patches, full_batches}}, the
  baseline first; the released figures are None without a full batch.
  """
  labels = [BASELINE, *models]
  scores = {label: metrics.TestMetrics(full_batch) for label in labels}
  for phone, dslr in batches:
    outputs = {BASELINE: phone, **{label: fn(phone) for label, fn in models.items()}}
    for label in labels:
      scores[label].update_state(dslr, outputs[label])
    if on_scored:
      on_scored(len(phone))
  results = {}
  for label in labels:
    r = {k: float(v) for k, v in scores[label].result().items()}
    if not r["patches"]:
      raise DpedError("no test patches to evaluate")
    results[label] = {**{k: None if np.isnan(r[k]) else r[k] for k in METRICS},
                      "patches": int(r["patches"]), "full_batches": int(r["full_batches"]),
                      "batch_size": full_batch}
  return results


def _cell(value, fmt):
  return "n/a" if value is None else format(value, fmt)


def format_table(phone, results):
  """Both protocols, labelled, one row per method."""
  first = next(iter(results.values()))
  width = max(len(label) for label in results) + 2
  lines = [f"Released code's protocol (Table 2): PSNR of each full batch of "
           f"{first['batch_size']} patches' MSE and the batch's MS-SSIM (5 scales), averaged "
           f"over {first['full_batches']} full batches (last partial batch dropped); "
           "raw outputs.",
           f"{'method':<{width}}{'PSNR (dB)':>10}{'MS-SSIM':>9}",
           *(f"{label:<{width}}{_cell(r['released_psnr'], '.2f'):>10}"
             f"{_cell(r['released_ms_ssim'], '.4f'):>9}" for label, r in results.items()),
           "", f"Per-patch protocol: mean PSNR and SSIM over {first['patches']} patches, "
           "outputs clipped to [0, 1].",
           f"{'method':<{width}}{'PSNR (dB)':>10}{'SSIM':>9}",
           *(f"{label:<{width}}{r['psnr']:>10.2f}{r['ssim']:>9.4f}"
             for label, r in results.items())]
  if first["batch_size"] != metrics.RELEASED_BATCH:
    lines += ["", f"NOTE: batches of {first['batch_size']}, not the released code's "
              f"{metrics.RELEASED_BATCH}: the released protocol's numbers differ from Table 2's."]
  return f"{phone}\n" + "\n".join(lines)


def format_markdown(results):
  """The results as one markdown table: both protocols labelled, a row per method."""
  lines = ["| method | released code: PSNR (dB) | released code: MS-SSIM | per patch: "
           "PSNR (dB) | per patch: SSIM |", "|---|---|---|---|---|"]
  lines += [f"| {label} | {_cell(r['released_psnr'], '.2f')} | "
            f"{_cell(r['released_ms_ssim'], '.4f')} | {r['psnr']:.2f} | {r['ssim']:.4f} |"
            for label, r in results.items()]
  return "\n".join(lines)


def to_json(phone, record, results):
  """`record` (where the data and the models came from, the precision) and `results`."""
  return json.dumps({"phone": phone, **record, "results": results}, indent=1) + "\n"


def to_csv(phone, results):
  buf = io.StringIO()
  writer = csv.writer(buf, lineterminator="\n")
  writer.writerow(["phone", "method", *METRICS, "patches", "full_batches", "batch_size"])
  for label, r in results.items():
    writer.writerow([phone, label, *("" if r[m] is None else f"{r[m]:.6f}" for m in METRICS),
                     r["patches"], r["full_batches"], r["batch_size"]])
  return buf.getvalue()
