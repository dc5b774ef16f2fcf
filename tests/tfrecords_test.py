"""DPED folders -> TFRecords -> tf.data batches (docs/method.md §5)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from dped_tf.testing.data import write_dped_folder
from dped_tf.dataloaders import dped_folder, tfrecords
from dped_tf.errors import DpedError

PATCH = 32


@pytest.fixture
def messy_dped(tmp_path):
  """A tiny DPED folder plus one of each kind of bad file."""
  root = write_dped_folder(str(tmp_path / "dped"), train=6, test=3, patch=PATCH)
  phone_dir, canon_dir = dped_folder.split_dirs(root, "sony", "train")
  open(os.path.join(phone_dir, "100.jpg"), "wb").close()            # 0 bytes
  with open(os.path.join(canon_dir, "100.jpg"), "wb") as f:
    f.write(open(os.path.join(canon_dir, "0.jpg"), "rb").read())
  with open(os.path.join(phone_dir, "101.jpg"), "wb") as f:         # wrong size
    f.write(tf.io.encode_jpeg(tf.zeros([PATCH, PATCH + 1, 3], tf.uint8)).numpy())
  with open(os.path.join(canon_dir, "101.jpg"), "wb") as f:
    f.write(open(os.path.join(canon_dir, "0.jpg"), "rb").read())
  with open(os.path.join(phone_dir, "102.jpg"), "wb") as f:         # not an image
    f.write(b"hello")
  with open(os.path.join(canon_dir, "102.jpg"), "wb") as f:
    f.write(open(os.path.join(canon_dir, "0.jpg"), "rb").read())
  with open(os.path.join(canon_dir, "103.jpg"), "wb") as f:         # no partner
    f.write(open(os.path.join(canon_dir, "0.jpg"), "rb").read())
  open(os.path.join(phone_dir, "notes.txt"), "w").close()           # not <i>.jpg
  return root


def test_convert_skips_and_reports_bad_files(messy_dped, tmp_path):
  out = str(tmp_path / "records")
  meta = tfrecords.convert_dped_folder(messy_dped, "sony", out, PATCH, pairs_per_shard=4)
  assert meta["train"]["pairs"] == 6 and meta["test"]["pairs"] == 3
  bad = " ".join(meta["train"]["bad"])
  assert "100.jpg: empty file" in bad
  assert f"101.jpg: size {PATCH + 1}x{PATCH}, expected {PATCH}x{PATCH}" in bad
  assert "102.jpg: not a decodable image" in bad
  assert [os.path.basename(p) for p in meta["train"]["unpaired"]] == ["103.jpg"]
  assert [os.path.basename(p) for p in meta["train"]["ignored"]] == ["notes.txt"]
  assert sorted(os.listdir(out)) == ["meta.json", "test-00000-of-00001.tfrecord",
                                     "train-00000-of-00003.tfrecord",
                                     "train-00001-of-00003.tfrecord",
                                     "train-00002-of-00003.tfrecord"]
  with open(os.path.join(out, "meta.json")) as f:
    assert json.load(f)["train"]["pairs"] == 6


def test_records_hold_the_original_jpeg_bytes(tmp_path):
  root = write_dped_folder(str(tmp_path / "dped"), train=3, test=2, patch=PATCH)
  out = str(tmp_path / "records")
  tfrecords.convert_dped_folder(root, "sony", out, PATCH)
  phone_dir, canon_dir = dped_folder.split_dirs(root, "sony", "train")
  records = list(tf.data.TFRecordDataset(tfrecords.split_files(out, "train")))
  assert len(records) == 3
  for raw in records:
    ex = tf.train.Example.FromString(raw.numpy())
    index = ex.features.feature["index"].int64_list.value[0]
    for key, folder in (("phone", phone_dir), ("dslr", canon_dir)):
      with open(os.path.join(folder, f"{index}.jpg"), "rb") as f:
        assert ex.features.feature[key].bytes_list.value[0] == f.read()


def test_reader_batches(tmp_path):
  root = write_dped_folder(str(tmp_path / "dped"), train=5, test=3, patch=PATCH)
  out = str(tmp_path / "records")
  tfrecords.convert_dped_folder(root, "sony", out, PATCH)
  train = tfrecords.make_dataset(out, "train", 2, PATCH, training=True, shuffle_buffer=8)
  assert train.element_spec[0].shape == (4, PATCH, PATCH, 3)  # static: 2 sub-steps x 2
  phone, dslr = next(iter(train))
  assert phone.dtype == tf.float32 and 0.0 <= float(tf.reduce_min(phone))
  assert float(tf.reduce_max(dslr)) <= 1.0
  # Evaluation: one ordered pass; the pixels are the decoded JPEG files.
  test = list(tfrecords.make_dataset(out, "test", 2, PATCH, training=False))
  assert [int(b[0].shape[0]) for b in test] == [2, 1]
  _, canon_dir = dped_folder.split_dirs(root, "sony", "test")
  first = tf.io.decode_jpeg(tf.io.read_file(os.path.join(canon_dir, "0.jpg"))).numpy() / 255.0
  np.testing.assert_allclose(test[0][1][0].numpy(), first, atol=1e-6)


def test_missing_folder_and_unknown_phone(tmp_path):
  with pytest.raises(DpedError, match="DPED folder not found"):
    tfrecords.convert_dped_folder(str(tmp_path), "sony", str(tmp_path / "o"))
  with pytest.raises(DpedError, match="phone name 'no kia' must be letters"):
    dped_folder.split_dirs(str(tmp_path), "no kia", "train")
  assert dped_folder.split_dirs(str(tmp_path), "nokia", "train")[0].endswith(
      os.path.join("training_data", "nokia"))
  with pytest.raises(DpedError, match="prepare"):
    tfrecords.read_meta(str(tmp_path))
