"""`dped-tf align` (docs/method.md §5): known homographies are recovered, real pairs give patches,
unrelated photos are skipped with a reason."""

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

SKIMAGE_DATA = os.path.dirname(skdata.__file__)


def grey(image):
  """ITU-R 601 luma in numpy (independent of OpenCV's conversion)."""
  return np.asarray(image, np.float64) @ [0.299, 0.587, 0.114]


def numpy_ncc(a, b):
  a, b = grey(a), grey(b)
  a, b = a - a.mean(), b - b.mean()
  return np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))


def synthetic_phone(dslr, h, size, seed=0):
  """The DSLR photo seen by a worse camera through the homography `h` (DSLR -> phone):
  smaller, another colour response, gamma, and noise."""
  phone = cv2.warpPerspective(dslr, h, size, flags=cv2.INTER_AREA)
  x = (phone / 255.0) ** 1.2 * [1.1, 1.0, 0.85]
  x += np.random.default_rng(seed).normal(0, 0.02, x.shape)
  return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def known_homography(scale=0.8, degrees=2.0):
  a = np.deg2rad(degrees)
  return np.array([[scale * np.cos(a), -scale * np.sin(a), -20],
                   [scale * np.sin(a), scale * np.cos(a), -15],
                   [2e-5, -1e-5, 1.0]])


@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_recovers_a_known_homography(photo):
  dslr = getattr(skdata, photo)()
  h_true = known_homography()
  size = (int(dslr.shape[1] * 0.7), int(dslr.shape[0] * 0.7))
  phone = synthetic_phone(dslr, h_true, size)
  result = align.align_pair(phone, dslr, align.AlignConfig(patch_size=64))
  assert result.status == "ok", result.reason
  height, width = dslr.shape[:2]
  corners = [[0, 0], [width, 0], [width, height], [0, height]]
  error = np.linalg.norm(align.project(np.array(result.homography), corners)
                         - align.project(h_true, corners), axis=1)
  assert error.max() < 1.0
  assert result.reprojection_px < 1.0
  assert result.scale == pytest.approx(1 / 0.8, rel=0.01)
  # The phone photo has the lower resolution: patches cover its frame, about 64 px apart.
  assert result.kept >= (size[0] // 64 - 1) * (size[1] // 64 - 1)
  for (phone_patch, dslr_patch), score in zip(result.patches, result.ncc):
    assert phone_patch.shape == dslr_patch.shape == (64, 64, 3)
    assert numpy_ncc(phone_patch, dslr_patch) > 0.9
    assert numpy_ncc(phone_patch, dslr_patch) == pytest.approx(score, abs=0.01)


def test_downscales_the_phone_when_it_has_more_pixels():
  dslr = skdata.coffee()
  h_true = known_homography(scale=1.5, degrees=-1.0)
  phone = synthetic_phone(dslr, h_true, (800, 560))
  result = align.align_pair(phone, dslr, align.AlignConfig(patch_size=64))
  assert result.status == "ok", result.reason
  assert result.scale == pytest.approx(1 / 1.5, rel=0.01)
  assert result.kept > 10
  assert all(numpy_ncc(p, d) > 0.9 for p, d in result.patches)


def test_best_shift_finds_a_known_shift():
  image = grey(skdata.chelsea())
  r, p = 4, 40
  dslr_patch = image[100:100 + p, 200:200 + p]
  for dy, dx in ((0, 0), (2, -3), (-4, 4)):
    region = image[100 - r - dy:100 + p + r - dy, 200 - r - dx:200 + p + r - dx]
    score, fy, fx = align.best_shift(region, dslr_patch, r)
    assert (fy, fx) == (dy, dx)
    found = region[r + fy:r + fy + p, r + fx:r + fx + p]
    assert score == pytest.approx(align.ncc(found, dslr_patch), abs=1e-4)
    assert score == pytest.approx(1.0, abs=1e-4)
  assert align.best_shift(np.zeros((48, 48)), np.full((40, 40), 7.0), r) == (0.0, 0, 0)


@pytest.mark.parametrize("h, words", [
    (np.diag([-1.0, 1.0, 1.0]), "mirrored"),
    (np.diag([20.0, 20.0, 1.0]), "scale"),
    (np.diag([1.0, 2.0, 1.0]), "stretched"),
    (np.array([[0, -1, 300], [1, 0, 0], [0, 0, 1.0]]), "rotated by 90 degrees"),
    (np.array([[1, 0, 0], [0, 1, 0], [-0.01, 0, 1.0]]), "infinity"),
])
def test_degenerate_homographies_are_named(h, words):
  assert words in align.degeneracy(h, (300, 400), align.AlignConfig())


def test_plausible_homography_is_not_degenerate():
  assert align.degeneracy(known_homography(), (512, 512), align.AlignConfig()) == ""


def test_unrelated_photos_are_skipped():
  result = align.align_pair(skdata.astronaut(), skdata.coffee())
  assert result.status == "skipped" and result.reason.startswith("too few matches")
  assert result.kept == 0 and not result.patches


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
  assert run_cli(f"--pairs_csv={photo_pairs / 'pairs.csv'}", "--phone=sony", f"--out={out}",
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
  assert numpy_ncc(patch[..., ::-1], dslr[..., ::-1]) > 0.85  # after JPEG round trips
  assert os.listdir(out / "sony" / "test_data" / "full_size_test_images") == ["coffee.jpg"]
  meta = tfrecords.read_meta(str(out / "sony" / "tfrecords"))
  assert meta["train"]["pairs"] == moto["kept"] and meta["test"]["pairs"] == synth["kept"]
  # A second run refuses to replace the output unless told to.
  assert run_cli(f"--pairs_csv={photo_pairs / 'pairs.csv'}", "--phone=sony",
                 f"--out={out}", "--patch_size=64") == 2
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
                 f"--out={out}") == 0
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
  assert run_cli(*args, "--phone=sony", f"--out={tmp_path}") == 2
  err = capsys.readouterr().err
  assert message in err and err.count("\n") == 1


def test_align_refuses_to_replace_its_input(photo_pairs, tmp_path):
  pairs, _ = align.find_pairs(pairs_csv=str(photo_pairs / "pairs.csv"))
  with pytest.raises(DpedError, match="would replace the input folder"):
    align.align_photos(align.assign_splits(pairs, 0, 0), str(photo_pairs.parent),
                       photo_pairs.name)
