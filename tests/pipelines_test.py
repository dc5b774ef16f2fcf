"""The Beam pipelines (`dped-tf enhance --beam`, `dped-tf align --beam`) on the
DirectRunner in multi-processing mode with 2 workers, against the one-process commands:
the same enhanced bytes, the same TFRecord shards as `align` + `prepare`, bad inputs counted and
reported while the rest complete, a rerun that does no work. Three pipeline runs (each
starts two workers that import TensorFlow), so the assertions are combined."""

import json
import os
import struct
import zlib

import cv2
import pytest
from skimage import data as skdata
import tensorflow as tf

from dped_tf import cli
from dped_tf.errors import DpedError
from dped_tf.pipelines import running
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.photo_pairs import known_homography, synthetic_phone
from dped_tf.testing.photos import smooth_photo

BEAM = ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
SKIMAGE_DATA = os.path.dirname(skdata.__file__)


def test_beam_options_default_to_the_direct_runner_and_refuse_unknown_ones():
  options = running.pipeline_options(["--direct_num_workers=3"]).get_all_options()
  assert options["runner"] == "DirectRunner"
  assert options["direct_running_mode"] == "multi_processing"
  assert options["direct_num_workers"] == 3
  with pytest.raises(DpedError, match="--direct_num_worker$"):
    running.pipeline_options(["--direct_num_worker=2"])


def _png_bomb(path, side=100000):
  """A PNG whose header says side x side pixels (refused before decoding)."""
  def chunk(kind, body):
    return (struct.pack(">I", len(body)) + kind + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))
  with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))


def test_enhance_beam_is_enhance_with_dead_letters_and_a_rerun_that_skips(tmp_path, capsys):
  model = str(tmp_path / "g.keras")
  random_weights_model().save(model)
  inputs = tmp_path / "in"
  inputs.mkdir()
  good = {"a.jpg", "b.jpg", "c.png", "d.tif"}
  for k, name in enumerate(sorted(good)):
    cv2.imwrite(str(inputs / name), smooth_photo(40 + 8 * k, 56, seed=k))
  (inputs / "bad.jpg").write_bytes(b"not a photo")
  _png_bomb(str(inputs / "bomb.png"))
  flags = [str(inputs), f"--model={model}", "--max_memory=64"]
  assert cli.main(["dped-tf", "enhance", *flags, f"--out={tmp_path / 'ref'}"]) == 1
  capsys.readouterr()
  out = tmp_path / "beam"
  beam = ["dped-tf", "enhance", *flags, f"--out={out}", "--beam", *BEAM]
  assert cli.main(beam) == 1
  printed = capsys.readouterr()
  assert "4 enhanced" in printed.out
  assert "0 already done, 1 refused, 1 failed" in printed.out
  # Dead letters in the order the workers finished them: sorted by photo to compare.
  dead = sorted((out / "dead_letter.txt").read_text().splitlines())
  assert all(f"  {line}\n" in printed.err for line in dead)
  assert [line.split(":")[0] for line in dead] == [str(inputs / "bad.jpg"),
                                                   str(inputs / "bomb.png")]
  assert "not a readable image" in dead[0] and "raise --max_memory to" in dead[1]
  for name in good:  # byte for byte what `dped-tf enhance` wrote
    assert (out / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
  written = {name: os.stat(out / name).st_mtime_ns for name in good}
  assert cli.main(beam) == 1  # the rerun: nothing left to do but the bad photos
  printed = capsys.readouterr()
  assert "0 enhanced (0.0 MP)" in printed.out
  assert "4 already done, 1 refused, 1 failed" in printed.out
  assert {name: os.stat(out / name).st_mtime_ns for name in good} == written


def _records(path):
  """[(index, phone JPEG, DSLR JPEG)] of a TFRecord shard (a record's serialized bytes
  may order its features differently)."""
  spec = {"index": tf.io.FixedLenFeature([], tf.int64),
          "phone": tf.io.FixedLenFeature([], tf.string),
          "dslr": tf.io.FixedLenFeature([], tf.string)}
  return [tuple(t.numpy() for t in tf.io.parse_single_example(r, spec).values())
          for r in tf.data.TFRecordDataset(str(path))]


def test_align_beam_gives_the_records_of_align_and_prepare(tmp_path, capsys):
  left = cv2.imread(os.path.join(SKIMAGE_DATA, "motorcycle_left.png"))
  right = cv2.imread(os.path.join(SKIMAGE_DATA, "motorcycle_right.png"))
  coffee = skdata.coffee()
  files = {"phone/moto.png": left, "dslr/moto.png": right,
           "phone/coffee.jpg": synthetic_phone(coffee, known_homography(), (420, 280))[..., ::-1],
           "dslr/coffee.png": coffee[..., ::-1], "dslr/broken.png": coffee[..., ::-1]}
  for name, image in files.items():
    os.makedirs(tmp_path / os.path.dirname(name), exist_ok=True)
    cv2.imwrite(str(tmp_path / name), image)
  (tmp_path / "phone" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
  (tmp_path / "pairs.csv").write_text(
      "phone,dslr,split\nphone/moto.png,dslr/moto.png,train\n"
      "phone/coffee.jpg,dslr/coffee.png,test\nphone/broken.png,dslr/broken.png,train\n")
  flags = [f"--pairs_csv={tmp_path / 'pairs.csv'}", "--phone=sony", "--patch_size=64",
           "--pairs_per_shard=8"]
  assert cli.main(["dped-tf", "align", *flags, f"--dped_dir={tmp_path / 'ref'}"]) == 0
  capsys.readouterr()
  assert cli.main(["dped-tf", "align", *flags, f"--dped_dir={tmp_path / 'beam'}", "--beam",
                   *BEAM]) == 0
  printed = capsys.readouterr().out
  assert "2 photo pairs aligned, 1 skipped (1 unreadable)" in printed
  assert f"SKIPPED: unreadable image: {tmp_path / 'phone' / 'broken.png'}" in printed
  ref, beam = (tmp_path / "ref" / "sony", tmp_path / "beam" / "sony")
  shards = sorted(n for n in os.listdir(ref / "tfrecords") if n.endswith(".tfrecord"))
  assert all(sum(n.startswith(split) for n in shards) >= 2 for split in ("train", "test"))
  assert sorted(n for n in os.listdir(beam / "tfrecords") if n.endswith(".tfrecord")) == shards
  for name in shards:  # the same records in the same shards (so equal as a set)
    assert _records(beam / "tfrecords" / name) == _records(ref / "tfrecords" / name)
  ref_report = json.loads((ref / "align_report.json").read_text())
  beam_report = json.loads((beam / "align_report.json").read_text())
  assert beam_report == ref_report
  ref_meta = json.loads((ref / "tfrecords" / "meta.json").read_text())
  beam_meta = json.loads((beam / "tfrecords" / "meta.json").read_text())
  assert {s: beam_meta[s]["pairs"] for s in ("train", "test")} == {
      s: ref_meta[s]["pairs"] for s in ("train", "test")}
  assert os.listdir(beam / "test_data" / "full_size_test_images") == ["coffee.jpg"]
