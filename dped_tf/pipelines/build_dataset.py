"""`dped-tf align ... --beam`: phone/DSLR photo pairs into the TFRecords of `dped-tf
prepare` by an Apache Beam pipeline (docs/method.md §5; README "At scale").

Each pair goes through `dataloaders.align.align_one`, the per-pair step of `dped-tf
align` (SIFT, RANSAC homography, patch windows, the NCC test); its patches are encoded
as `dped-tf align` writes them and numbered as it numbers them (per split, in the order
of the pairs), and become the records `dped-tf prepare` would make of that folder: the
same records in the same shards as `align` followed by `prepare`.
The split is by photo (`align.assign_splits`, before the pipeline). The per-pair report
is a side output, gathered into `align_report.json`; a pair that cannot be read or
aligned is counted and reported with its reason, and the rest go on. Writes, published
together when the pipeline is done: `<out>/<phone>/tfrecords/` (shards and
`meta.json`), `align_report.json` and the full-size test photos.
"""

import dataclasses
import glob
import json
import os
import shutil

import apache_beam as beam

from dped_tf import fileio
from dped_tf.lazy import lazy_import
from dped_tf.pipelines import running

align = lazy_import("dped_tf.dataloaders.align")
dped_folder = lazy_import("dped_tf.dataloaders.dped_folder")
tfrecords = lazy_import("dped_tf.dataloaders.tfrecords")
tf = lazy_import("tensorflow")

COUNTERS = ("pairs", "aligned", "skipped", "failed", "patch_pairs")
SPLITS = ("train", "test")


class AlignPairs(beam.DoFn):
  """(order, pair) -> (order, split, [(phone JPEG, DSLR JPEG)]); the pair's report row
  (JSON, with its `order`) on the `report` output. Writes the full-size test photos
  under `root`."""

  def __init__(self, cfg, root, phone):
    self._cfg = cfg
    self._root = root
    self._phone = phone
    self._counters = {name: running.counter(name) for name in COUNTERS}

  def process(self, element):
    order, pair = element
    result, phone_image = align.align_one(pair, self._cfg)
    self._counters["pairs"].inc()
    if phone_image is None:
      self._counters["failed"].inc()
    self._counters["aligned" if result.status == "ok" else "skipped"].inc()
    self._counters["patch_pairs"].inc(result.kept)
    if pair[3] == "test" and result.kept:
      align.save_full_size(self._root, self._phone, pair, phone_image)
    patches = [(dped_folder.encode_jpeg(a), dped_folder.encode_jpeg(b))
               for a, b in result.patches]
    result.patches = []
    yield beam.pvalue.TaggedOutput(
        "report", json.dumps({"order": order, **align.report_row(pair, result)}))
    yield order, pair[3], patches


def _count(element):
  order, split, patches = element
  return order, split, len(patches)


def _numbering(counts):
  """(first index of each pair's patches, pairs per split), as `dped-tf align` numbers
  them."""
  return dped_folder.first_indices(sorted(counts))


def _records(element, numbering, pairs_per_shard):
  """A pair's patches -> ((split, shard, shards), (index, record)), in the shards of
  `tfrecords.write_split`: consecutive indices, `pairs_per_shard` to a shard."""
  order, split, patches = element
  first, counts = numbering
  shards = max(1, -(-counts[split] // pairs_per_shard))
  for j, (phone, dslr) in enumerate(patches):
    index = first[order] + j
    yield (split, index // pairs_per_shard, shards), (index, tfrecords.example(index, phone,
                                                                                dslr))


def _write_shard(element, folder):
  """Writes one shard's records in index order, through a temporary file and a rename."""
  (split, shard, shards), records = element
  path = tfrecords.shard_path(folder, split, shard, shards)
  tmp = f"{path}.tmp-{os.getpid()}"
  with tf.io.TFRecordWriter(tmp) as writer:
    for _, record in sorted(records):
      writer.write(record)
  tf.io.gfile.rename(tmp, path, overwrite=True)
  return path


def build(pipeline, pairs, cfg, root, phone, pairs_per_shard=2000):
  """Adds the pipeline from `pairs` (with splits) to `<root>/<phone>/tfrecords/` shards
  and `<root>/report-*.jsonl` (report rows) to `pipeline`."""
  aligned = (pipeline
             | "Pairs" >> beam.Create(list(enumerate(pairs)))
             | "Spread" >> beam.Reshuffle()
             | "Align" >> beam.ParDo(AlignPairs(cfg, root, phone)).with_outputs(
                 "report", main="patches"))
  numbering = (aligned.patches
               | "Count" >> beam.Map(_count)
               | "AllCounts" >> beam.combiners.ToList()
               | "Numbering" >> beam.Map(_numbering))
  _ = (aligned.patches
       | "Records" >> beam.FlatMap(_records, beam.pvalue.AsSingleton(numbering),
                                   pairs_per_shard)
       | "ByShard" >> beam.GroupByKey()
       | "WriteShards" >> beam.Map(_write_shard, os.path.join(root, phone, "tfrecords")))
  _ = aligned.report | "WriteReport" >> beam.io.WriteToText(
      os.path.join(root, "report"), file_name_suffix=".jsonl")


def run(pairs, out_dir, phone, cfg, beam_args=(), overwrite=False, source=None,
        pairs_per_shard=2000):
  """Builds `<out_dir>/<phone>` from `pairs` [(name, phone_path, dslr_path, split)] with
  a Beam pipeline (`running.pipeline_options(beam_args)`); `source`: what the meta names
  as the data's origin. Returns (the report, as `align.align_photos` returns it; the
  counters)."""
  inputs = sorted({os.path.dirname(p) for _, pp, dp, _ in pairs for p in (pp, dp)})
  final = dped_folder.check_output(out_dir, phone, inputs, overwrite)
  tmp = os.path.join(out_dir, f".{phone}.tmp-beam-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  folder = os.path.join(tmp, phone, "tfrecords")
  try:
    os.makedirs(folder)
    os.makedirs(dped_folder.full_size_dir(tmp, phone))
    pipeline = beam.Pipeline(options=running.pipeline_options(beam_args))
    build(pipeline, pairs, cfg, tmp, phone, pairs_per_shard)
    counts = {name: 0 for name in COUNTERS}
    counts.update(running.counters(running.run(pipeline)))
    rows = []
    for path in glob.glob(os.path.join(tmp, "report*.jsonl")):
      with open(path) as f:
        rows += [json.loads(line) for line in f if line.strip()]
    rows.sort(key=lambda row: row["order"])
    patches = dped_folder.first_indices(
        [(row.pop("order"), row["split"], row["kept"]) for row in rows])[1]
    report = {"config": dataclasses.asdict(cfg), "patches": patches, "photos": rows}
    fileio.atomic_write_bytes(os.path.join(tmp, phone, align.REPORT),
                              json.dumps(report, indent=1).encode())
    meta = {"phone": phone, "patch_size": cfg.patch_size, "source": source,
            **{split: {"pairs": patches[split], "bad": [], "unpaired": [], "ignored": []}
               for split in SPLITS}}
    fileio.atomic_write_bytes(os.path.join(folder, tfrecords.META),
                              json.dumps(meta, indent=1).encode())
    fileio.publish_dir(os.path.join(tmp, phone), final)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return report, counts
