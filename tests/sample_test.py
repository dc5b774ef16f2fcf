"""`dped-tf sample`: the embedded dataset from scikit-image photos + the camera simulator."""

import os

import cv2
import numpy as np
import pytest

from dped_tf import cli
from dped_tf.dataloaders import dped_folder
from dped_tf.dataloaders import sample
from dped_tf.dataloaders import tfrecords

SMALL = dict(patch_size=48, train_patches=40, test_patches=12)


def test_rig_misalignment_is_small_but_real():
  height, width = 400, 600
  ys, xs = np.mgrid[0:height:10, 0:width:10]
  points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
  largest = []
  for seed in range(50):
    affine = sample.rig_misalignment(height, width, np.random.default_rng(seed))
    largest.append(np.linalg.norm(affine @ points - points[:2], axis=0).max())
  assert max(largest) <= sample.MAX_RIG_SHIFT
  assert np.median(largest) > 0.3 * sample.MAX_RIG_SHIFT


def test_split_counts_is_proportional_and_exact():
  assert sample.split_counts(10, [1, 1, 2]) == [3, 2, 5]
  areas = np.array([512 * 512, 400 * 600, 427 * 640, 500 * 741])
  counts = sample.split_counts(1500, areas)
  assert sum(counts) == 1500
  assert np.all(np.abs(counts - 1500 * areas / areas.sum()) < 1)


def best_ncc(patch, photo):
  scores = cv2.matchTemplate(np.float32(photo), np.float32(patch), cv2.TM_CCOEFF_NORMED)
  return scores.max()


def files(root):
  found = {}
  for dirpath, _, names in os.walk(root):
    for name in names:
      path = os.path.join(dirpath, name)
      if name != tfrecords.META:
        with open(path, "rb") as f:
          found[os.path.relpath(path, root)] = f.read()
  return found


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
  out = tmp_path_factory.mktemp("sample")
  return out, {phone: sample.build_sample(str(out), phone, **SMALL)
               for phone in ("iphone", "blackberry", "sony")}


def test_sample_layout_tfrecords_and_meta(samples):
  out, summaries = samples
  for phone, s in summaries.items():
    assert (s["train"], s["test"]) == (40, 12)
    for split, count in (("train", 40), ("test", 12)):
      scan = dped_folder.scan_pairs(str(out), phone, split)
      assert len(scan.pairs) == count and not scan.unpaired
    full = dped_folder.full_size_dir(str(out), phone)
    assert os.listdir(full) == ["chelsea.jpg"]
    meta = tfrecords.read_meta(s["tfrecords"])
    assert meta["train"]["pairs"] == 40 and meta["test"]["pairs"] == 12
    assert phone in meta["sample"] and "scikit-image" in meta["sample"]


def test_sample_phones_are_ordered_by_quality(samples):
  _, s = samples
  assert s["iphone"]["psnr"] < s["blackberry"]["psnr"] < s["sony"]["psnr"]
  assert s["iphone"]["ssim"] < s["blackberry"]["ssim"] < s["sony"]["ssim"]
  assert 15 < s["iphone"]["psnr"] and s["sony"]["psnr"] < 35


def test_sample_splits_by_photo(samples):
  out, _ = samples
  chelsea = cv2.cvtColor(sample.load_photo("chelsea.png"), cv2.COLOR_RGB2GRAY)
  for split, inside in (("test", True), ("train", False)):
    for _, _, dslr_path in dped_folder.scan_pairs(str(out), "sony", split).pairs[:10]:
      patch = cv2.imread(dslr_path, cv2.IMREAD_GRAYSCALE)
      assert (best_ncc(patch, chelsea) > 0.97) == inside, dslr_path


def test_sample_phone_side_is_misaligned_by_a_few_pixels(samples):
  out, _ = samples
  shifts = []
  for _, phone_path, dslr_path in dped_folder.scan_pairs(str(out), "sony", "train").pairs:
    phone = cv2.imread(phone_path, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    dslr = cv2.imread(dslr_path, cv2.IMREAD_GRAYSCALE).astype(np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(dslr, phone)
    shifts.append(np.hypot(dx, dy))
  assert np.median(shifts) < sample.MAX_RIG_SHIFT + 1
  assert np.max(shifts) > 0.3


def test_sample_is_deterministic_for_a_seed(samples, tmp_path):
  out, _ = samples
  again = sample.build_sample(str(tmp_path / "a"), "sony", **SMALL)
  assert files(tmp_path / "a" / "sony") == files(out / "sony")
  assert again["psnr"] == samples[1]["sony"]["psnr"]
  other = sample.build_sample(str(tmp_path / "b"), "sony", seed=1, **SMALL)
  assert files(tmp_path / "b" / "sony") != files(out / "sony")
  assert other["psnr"] != again["psnr"]


def test_sample_command(tmp_path, capsys):
  args = ["dped-tf", "sample", "--phone=iphone", f"--dped_dir={tmp_path}", "--patch_size=32",
          "--train_patches=10", "--test_patches=4"]
  assert cli.main(args) == 0
  printed = capsys.readouterr().out
  assert "iphone: 10 train / 4 test patch pairs" in printed
  assert "PSNR" in printed and "SSIM" in printed
  assert cli.main(args) == 2
  assert "already exists (pass --overwrite" in capsys.readouterr().err
  assert cli.main(args + ["--overwrite"]) == 0


def test_sample_for_a_new_phone_name_needs_a_camera(tmp_path, capsys):
  out = str(tmp_path / "s")
  assert cli.main(["dped-tf", "sample", "--phone", "my_phone-2", "--dped_dir", out,
                   "--patch_size", "48", "--train_patches", "4", "--test_patches", "2"]) == 2
  assert "--camera" in capsys.readouterr().err and not os.path.exists(out)
  assert cli.main(["dped-tf", "sample", "--phone", "my_phone-2", "--camera", "midrange",
                   "--dped_dir", out, "--patch_size", "48", "--train_patches", "4",
                   "--test_patches", "2"]) == 0
  meta = tfrecords.read_meta(os.path.join(out, "my_phone-2", "tfrecords"))
  assert "midrange" in meta["sample"] and meta["test"]["pairs"] == 2
  # The same photos and seed through the sony camera give other phone pixels.
  sony = sample.build_sample(str(tmp_path / "t"), "my_phone-2", 48, 4, 2, camera="sony")
  assert "sony" in sony["sample"]
  scan = dped_folder.scan_pairs(out, "my_phone-2", "test").pairs
  other = dped_folder.scan_pairs(str(tmp_path / "t"), "my_phone-2", "test").pairs
  a, b = (cv2.imread(pairs[0][1]).astype(float) for pairs in (scan, other))
  assert np.abs(a - b).mean() > 2


def test_camera_flag_lists_every_profile():
  from dped_tf.commands import sample as sample_command  # pylint: disable=import-outside-toplevel
  from dped_tf.dataloaders import camera_sim  # pylint: disable=import-outside-toplevel
  assert sample_command.CAMERAS == tuple(camera_sim.PROFILES)
