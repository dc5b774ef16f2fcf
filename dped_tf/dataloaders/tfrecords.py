"""Pre-aligned patch pairs as sharded TFRecords, and the `tf.data` reader (docs/method.md §5).

Each record holds the original encoded JPEG bytes of both patches (never decoded and
re-encoded) under `phone` and `dslr`, and the pair's `index`. A folder of shards has a
`meta.json` that says what was written and what was skipped, and why.
"""

import concurrent.futures
import json
import os

from absl import logging
import tensorflow as tf

from dped_tf import fileio
from dped_tf import image_io
from dped_tf import progress as progress_lib
from dped_tf.dataloaders import dped_folder
from dped_tf.errors import DpedError

META = "meta.json"
SPLITS = ("train", "test")


def check_patch(path, patch_size):
  """Returns (encoded bytes, None) or (None, reason) for one patch file."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    return None, f"unreadable ({e.strerror})"
  if not data:
    return None, "empty file"
  try:
    image = image_io.read_photo(path).pixels  # grey patches become RGB, as in parse_pair
  except DpedError:
    return None, "not a decodable image"
  if not data.startswith(b"\xff\xd8"):
    return None, "not a JPEG"
  if image.shape[:2] != (patch_size, patch_size):
    return None, f"size {image.shape[1]}x{image.shape[0]}, expected {patch_size}x{patch_size}"
  return data, None


def example(index, phone_bytes, dslr_bytes):
  """One pair's record: its `index` and the encoded bytes of both patches."""
  feature = {
      "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
      "phone": tf.train.Feature(bytes_list=tf.train.BytesList(value=[phone_bytes])),
      "dslr": tf.train.Feature(bytes_list=tf.train.BytesList(value=[dslr_bytes])),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _check_pair(pair, patch_size):
  index, phone_path, dslr_path = pair
  phone, why = check_patch(phone_path, patch_size)
  if why:
    return index, None, None, f"{phone_path}: {why}"
  dslr, why = check_patch(dslr_path, patch_size)
  if why:
    return index, None, None, f"{dslr_path}: {why}"
  return index, phone, dslr, None


def shard_path(out_dir, split, shard, num_shards):
  """The path of shard `shard` (from 0) of `num_shards` of a split."""
  return os.path.join(out_dir, f"{split}-{shard:05d}-of-{num_shards:05d}.tfrecord")


def write_split(pairs, out_dir, split, patch_size=100, pairs_per_shard=2000, threads=4,
                progress=None):
  """Writes `pairs` [(index, phone_path, dslr_path)] as `<split>-KKKKK-of-NNNNN.tfrecord`.

  Bad pairs are skipped and returned as ["path: reason"]. Returns (written, bad).
  `progress`: a `dped_tf.progress.Progress`-like factory to show the pairs done.
  """
  num_shards = max(1, -(-len(pairs) // pairs_per_shard))
  written, bad = 0, []
  with (concurrent.futures.ThreadPoolExecutor(threads) as pool,
        progress_lib.start(progress, len(pairs), "pair", f"{split} TFRecords") as bar):
    for shard in range(num_shards):
      chunk = pairs[shard * pairs_per_shard:(shard + 1) * pairs_per_shard]
      path = shard_path(out_dir, split, shard, num_shards)
      tmp = f"{path}.tmp-{os.getpid()}"
      with tf.io.TFRecordWriter(tmp) as writer:
        for index, phone, dslr, why in pool.map(lambda p: _check_pair(p, patch_size), chunk):
          if why:
            bad.append(why)
          else:
            writer.write(example(index, phone, dslr))
            written += 1
          bar.update()
      os.replace(tmp, path)
  return written, bad


def _report_skipped(what, items):
  if items:
    logging.warning("%s: %d skipped, first: %s", what, len(items), "; ".join(items[:5]))


def convert_dped_folder(dped_dir, phone, out_dir, patch_size=100, pairs_per_shard=2000,
                        extra_meta=None, progress=None):
  """DPED layout (docs/method.md §5) -> TFRecords of both splits + `meta.json`; returns the meta.

  `extra_meta` (a dict) is merged into the meta, e.g. {"sample": "..."} for the embedded
  sample dataset, which the trainer then flags loudly. `progress`: as for `write_split`.
  """
  scans = {split: dped_folder.scan_pairs(dped_dir, phone, split) for split in SPLITS}
  if os.path.exists(out_dir) and not os.path.isdir(out_dir):
    raise DpedError(f"{out_dir}: output path exists and is not a folder")
  os.makedirs(out_dir, exist_ok=True)
  meta = {"phone": phone, "patch_size": patch_size, "source": os.path.abspath(dped_dir),
          **(extra_meta or {})}
  for split, scan in scans.items():
    if not scan.pairs:
      raise DpedError(f"{dped_folder.split_dirs(dped_dir, phone, split)[0]}: no <i>.jpg "
                      "patches with a partner of the same index")
    logging.info("%s %s: %d pairs", phone, split, len(scan.pairs))
    written, bad = write_split(scan.pairs, out_dir, split, patch_size, pairs_per_shard,
                               progress=progress)
    meta[split] = {"pairs": written, "bad": bad, "unpaired": scan.unpaired,
                   "ignored": scan.ignored}
    _report_skipped(f"{split}: bad pairs", bad)
    _report_skipped(f"{split}: unpaired files", scan.unpaired)
    _report_skipped(f"{split}: files not named <i>.jpg", scan.ignored)
    if not written:
      raise DpedError(f"{dped_folder.split_dirs(dped_dir, phone, split)[0]}: no usable "
                      f"pairs ({len(bad)} bad, first: {bad[0]})")
  fileio.atomic_write_bytes(os.path.join(out_dir, META), json.dumps(meta, indent=1).encode())
  return meta


def read_meta(tfrecord_dir):
  path = os.path.join(tfrecord_dir, META)
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    raise DpedError(f"{path}: not found; run `dped-tf prepare` first") from None
  except (OSError, ValueError) as e:
    raise DpedError(f"{path}: unreadable ({e})") from None


def parse_pair(serialized, patch_size):
  """A serialized record -> (phone, dslr) float32 [patch, patch, 3] in [0, 1]."""
  spec = {"phone": tf.io.FixedLenFeature([], tf.string),
          "dslr": tf.io.FixedLenFeature([], tf.string)}
  record = tf.io.parse_single_example(serialized, spec)

  def decode(data):
    image = tf.io.decode_jpeg(data, channels=3)
    image = tf.ensure_shape(image, [patch_size, patch_size, 3])
    return tf.image.convert_image_dtype(image, tf.float32)

  return decode(record["phone"]), decode(record["dslr"])


def augment_pair(phone, dslr, seed):
  """The same random flip and 90-degree rotation for both sides of a pair."""
  flip = tf.random.stateless_uniform([], seed, 0, 2, tf.int32)
  turns = tf.random.stateless_uniform([], seed + 1, 0, 4, tf.int32)

  def apply(image):
    image = tf.cond(flip > 0, lambda: tf.image.flip_left_right(image), lambda: image)
    return tf.image.rot90(image, turns)

  return apply(phone), apply(dslr)


def split_files(tfrecord_dir, split):
  files = sorted(tf.io.gfile.glob(os.path.join(tfrecord_dir, f"{split}-*.tfrecord")))
  if not files:
    raise DpedError(f"{tfrecord_dir}: no {split}-*.tfrecord shards")
  return files


def _epoch_fn(files, shuffle_buffer, seed, num_shards, shard_index):
  """Epoch number -> that epoch's records of this shard, in an order fixed by (seed, epoch).

  Stateless shuffles (of the files, then of consecutive blocks of `shuffle_buffer`
  records): `Dataset.shuffle` cannot take a per-epoch seed inside `flat_map`.
  """
  files = tf.constant(files)

  def epoch(e):
    order = tf.random.experimental.stateless_shuffle(files, tf.stack([seed, e]))
    ds = tf.data.Dataset.from_tensor_slices(order)
    ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                       num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.shard(num_shards, shard_index).batch(shuffle_buffer).enumerate()
    ds = ds.map(lambda i, block: tf.random.experimental.stateless_shuffle(
        block, tf.stack([seed, e * 2**31 + i + 1])))
    return ds.unbatch()
  return epoch


def make_dataset(tfrecord_dir, split, batch_size, patch_size=100, training=True,
                 pairs_per_step=2, shuffle_buffer=10000, seed=0, augment=False,
                 num_shards=1, shard_index=0, start_record=0):
  """Batches of (phone, dslr) float32 [N, patch, patch, 3].

  Training: an endless stream of epochs, each in an order fixed by (seed, epoch): shards
  interleaved in parallel, records (every `num_shards`-th from `shard_index`: one input
  pipeline per worker) shuffled in blocks of `shuffle_buffer` as encoded bytes, so the
  buffer stays small; decoded in
  parallel, batched to a static `pairs_per_step * batch_size` (the trainer's two
  sub-steps), prefetched. `start_record` resumes the stream after that many records of
  this shard: whole epochs are skipped for free, the rest of one epoch is read and
  dropped undecoded; no iterator state needs checkpointing.
  Evaluation: one ordered pass, batches of `batch_size`, the last one possibly smaller.
  """
  files = split_files(tfrecord_dir, split)
  if training:
    epoch = _epoch_fn(files, shuffle_buffer, seed, num_shards, shard_index)
    first_epoch, offset = 0, start_record
    if start_record:
      pairs = read_meta(tfrecord_dir)[split]["pairs"]
      per_epoch = len(range(shard_index, pairs, num_shards))
      first_epoch, offset = divmod(start_record, per_epoch)
    ds = tf.data.Dataset.range(first_epoch, 2**31).flat_map(epoch).skip(offset)
  else:
    ds = tf.data.TFRecordDataset(files)
  ds = ds.map(lambda s: parse_pair(s, patch_size), num_parallel_calls=tf.data.AUTOTUNE)
  if training and augment:
    rand = tf.data.Dataset.random(seed=seed).batch(2).skip(start_record)
    ds = tf.data.Dataset.zip((ds, rand))
    ds = ds.map(lambda pair, s: augment_pair(*pair, tf.cast(s, tf.int32) % (2**31 - 2)),
                num_parallel_calls=tf.data.AUTOTUNE)
  if training:
    ds = ds.batch(pairs_per_step * batch_size, drop_remainder=True)
  else:
    ds = ds.batch(batch_size)
  return ds.prefetch(tf.data.AUTOTUNE)
