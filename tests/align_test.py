"""`dped-tf align` over folders of photos (docs/method.md §5): splits by photo, real pairs give
numbered patches and a report, unrelated or unreadable photos are skipped with a reason, the
output never replaces the input."""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from dped_tf import cli
from dped_tf.dataloaders import align
from dped_tf.dataloaders import tfrecords
from dped_tf.errors import DpedError
from dped_tf.testing.numpy_metrics import np_ncc
from dped_tf.testing.photo_pairs import known_homography, synthetic_phone

SKIMAGE_DATA = os.path.dirname(skdata.__file__)


def test_assign_splits_is_by_photo_and_seeded():
  pairs = [(f"p{i}", "a", "b", None) for i in range(10)] + [("fixed", "a", "b", "train")]
  first = align.assign_splits(pairs, 0.2, seed=3)
  assert first == align.assign_splits(pairs, 0.2, seed=3)
  assert sum(s == "test" for *_, s in first) == 2
  assert dict((n, s) for n, _, _, s in first)["fixed"] == "train"
  assert [s for *_, s in align.assign_splits(pairs[:2], 0.1, 0)].count("test") == 1


@pytest.fixture(scope="module")
def photo_pairs(tmp_path_factory):
  """Real two-camera content: the motorcycle stereo pair (train), a synthetic pair with a
  known homography (test) and two unrelated photos (train), listed in a pairs CSV."""
  root = tmp_path_factory.mktemp("photos")
  left = cv2.imread(os.path.join(SKIMAGE_DATA, "motorcycle_left.png"))
  right = cv2.imread(os.path.join(SKIMAGE_DATA, "motorcycle_right.png"))
  coffee = skdata.coffee()
  files = {
      "phone/moto.png": left, "dslr/moto.png": right,
      "phone/coffee.jpg": synthetic_phone(coffee, known_homography(), (420, 280))[..., ::-1],
      "dslr/coffee.png": coffee[..., ::-1],
      "phone/unrelated.png": skdata.astronaut()[..., ::-1],
      "dslr/unrelated.png": skdata.rocket()[..., ::-1],
  }
  for name, image in files.items():
    os.makedirs(root / os.path.dirname(name), exist_ok=True)
    cv2.imwrite(str(root / name), image)
  (root / "pairs.csv").write_text(
      "phone,dslr,split\nphone/moto.png,dslr/moto.png,train\n"
      "phone/coffee.jpg,dslr/coffee.png,test\nphone/unrelated.png,dslr/unrelated.png,\n")
  return root


def run_cli(*args):
  return cli.main(["dped-tf", "align", *args])


def test_align_command_on_real_pairs(photo_pairs, tmp_path, capsys):
  out = tmp_path / "out"
  assert run_cli(f"--pairs_csv={photo_pairs / 'pairs.csv'}", "--phone=sony", f"--dped_dir={out}",
                 "--patch_size=64", "--test_fraction=0") == 0
  printed = capsys.readouterr().out
  assert "SKIPPED: too few matches" in printed
  with open(out / "sony" / align.REPORT) as f:
    report = json.load(f)
  photos = {p["name"]: p for p in report["photos"]}
  moto, synth, unrelated = photos["moto"], photos["coffee"], photos["unrelated"]
  # The stereo rig: many inliers on a near-identity homography, parallax rejects some
  # windows, and the ones kept pass NCC > 0.9.
  assert moto["status"] == "ok" and moto["inliers"] > 100
  assert moto["scale"] == pytest.approx(1.0, abs=0.05)
  assert moto["kept"] > 5 and moto["rejected_ncc"] > 0
  assert min(moto["ncc"]) > 0.9
  assert len(moto["shifts"]) == moto["kept"]
  assert np.abs(moto["shifts"]).max() <= report["config"]["search_radius"]
  assert synth["split"] == "test" and synth["kept"] > 10
  assert unrelated["status"] == "skipped" and unrelated["kept"] == 0
  assert unrelated["reason"].startswith("too few matches")
  assert report["patches"] == {"train": moto["kept"], "test": synth["kept"]}
  train_phone = out / "sony" / "training_data" / "sony"
  assert sorted(os.listdir(train_phone)) == sorted(f"{i}.jpg" for i in range(moto["kept"]))
  patch = cv2.imread(str(train_phone / "0.jpg"))
  dslr = cv2.imread(str(out / "sony" / "training_data" / "canon" / "0.jpg"))
  assert patch.shape == dslr.shape == (64, 64, 3)
  assert np_ncc(patch[..., ::-1], dslr[..., ::-1]) > 0.85  # after JPEG round trips
  assert os.listdir(out / "sony" / "test_data" / "full_size_test_images") == ["coffee.jpg"]
  meta = tfrecords.read_meta(str(out / "sony" / "tfrecords"))
  assert meta["train"]["pairs"] == moto["kept"] and meta["test"]["pairs"] == synth["kept"]
  # A second run refuses to replace the output unless told to.
  assert run_cli(f"--pairs_csv={photo_pairs / 'pairs.csv'}", "--phone=sony",
                 f"--dped_dir={out}", "--patch_size=64") == 2
  assert "already exists" in capsys.readouterr().err


def test_align_command_skips_unrelated_photos_with_status_0(photo_pairs, tmp_path, capsys):
  phone_dir, dslr_dir = tmp_path / "phone", tmp_path / "dslr"
  phone_dir.mkdir()
  dslr_dir.mkdir()
  for folder, name in ((phone_dir, "unrelated.png"), (dslr_dir, "unrelated.png")):
    shutil.copy(photo_pairs / folder.name / name, folder / name)
  (phone_dir / "broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
  shutil.copy(photo_pairs / "dslr" / "moto.png", dslr_dir / "broken.png")
  out = tmp_path / "out"
  assert run_cli(f"--phone_dir={phone_dir}", f"--dslr_dir={dslr_dir}", "--phone=iphone",
                 f"--dped_dir={out}") == 0
  printed = capsys.readouterr().out
  assert "unrelated" in printed and "SKIPPED: too few matches" in printed
  assert f"SKIPPED: unreadable image: {phone_dir / 'broken.jpg'}" in printed
  assert "no TFRecords written" in printed
  with open(out / "iphone" / align.REPORT) as f:
    broken, photo = json.load(f)["photos"]
  assert broken["status"] == "skipped" and broken["name"] == "broken"
  assert photo["status"] == "skipped" and photo["reprojection_px"] is None
  assert not os.listdir(out / "iphone" / "training_data" / "iphone")


@pytest.mark.parametrize("args, message", [
    (["--phone_dir=/nonexistent/p", "--dslr_dir=/nonexistent/d"], "/nonexistent/p: photo "
     "folder not found"),
    (["--phone_dir=/tmp"], "--phone_dir and --dslr_dir go together"),
    (["--pairs_csv=/nonexistent.csv"], "/nonexistent.csv: unreadable"),
])
def test_align_command_bad_input_is_one_line(args, message, tmp_path, capsys):
  assert run_cli(*args, "--phone=sony", f"--dped_dir={tmp_path}") == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1


def test_align_refuses_to_replace_its_input(photo_pairs, tmp_path):
  pairs, _ = align.find_pairs(pairs_csv=str(photo_pairs / "pairs.csv"))
  with pytest.raises(DpedError, match="would replace the input folder"):
    align.align_photos(align.assign_splits(pairs, 0, 0), str(photo_pairs.parent),
                       photo_pairs.name)
