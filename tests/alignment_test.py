"""Aligning one photo pair (docs/method.md §5): known homographies are recovered, the
patches kept pass NCC, degenerate homographies are named, unrelated photos are skipped."""

import numpy as np
import pytest
from skimage import data as skdata

from dped_tf.dataloaders import alignment
from dped_tf.testing.numpy_metrics import np_luma, np_ncc
from dped_tf.testing.photo_pairs import known_homography, synthetic_phone


@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_recovers_a_known_homography(photo):
  dslr = getattr(skdata, photo)()
  h_true = known_homography()
  size = (int(dslr.shape[1] * 0.7), int(dslr.shape[0] * 0.7))
  phone = synthetic_phone(dslr, h_true, size)
  result = alignment.align_pair(phone, dslr, alignment.AlignConfig(patch_size=64))
  assert result.status == "ok", result.reason
  height, width = dslr.shape[:2]
  corners = [[0, 0], [width, 0], [width, height], [0, height]]
  error = np.linalg.norm(alignment.project(np.array(result.homography), corners)
                         - alignment.project(h_true, corners), axis=1)
  assert error.max() < 1.0
  assert result.reprojection_px < 1.0
  assert result.scale == pytest.approx(1 / 0.8, rel=0.01)
  # The phone photo has the lower resolution: patches cover its frame, about 64 px apart.
  assert result.kept >= (size[0] // 64 - 1) * (size[1] // 64 - 1)
  for (phone_patch, dslr_patch), score in zip(result.patches, result.ncc):
    assert phone_patch.shape == dslr_patch.shape == (64, 64, 3)
    assert np_ncc(phone_patch, dslr_patch) > 0.9
    assert np_ncc(phone_patch, dslr_patch) == pytest.approx(score, abs=0.01)


def test_downscales_the_phone_when_it_has_more_pixels():
  dslr = skdata.coffee()
  h_true = known_homography(scale=1.5, degrees=-1.0)
  phone = synthetic_phone(dslr, h_true, (800, 560))
  result = alignment.align_pair(phone, dslr, alignment.AlignConfig(patch_size=64))
  assert result.status == "ok", result.reason
  assert result.scale == pytest.approx(1 / 1.5, rel=0.01)
  assert result.kept > 10
  assert all(np_ncc(p, d) > 0.9 for p, d in result.patches)


def test_best_shift_finds_a_known_shift():
  image = np_luma(skdata.chelsea())
  r, p = 4, 40
  dslr_patch = image[100:100 + p, 200:200 + p]
  for dy, dx in ((0, 0), (2, -3), (-4, 4)):
    region = image[100 - r - dy:100 + p + r - dy, 200 - r - dx:200 + p + r - dx]
    score, fy, fx = alignment.best_shift(region, dslr_patch, r)
    assert (fy, fx) == (dy, dx)
    found = region[r + fy:r + fy + p, r + fx:r + fx + p]
    assert score == pytest.approx(alignment.ncc(found, dslr_patch), abs=1e-4)
    assert score == pytest.approx(1.0, abs=1e-4)
  assert alignment.best_shift(np.zeros((48, 48)), np.full((40, 40), 7.0), r) == (0.0, 0, 0)


@pytest.mark.parametrize("h, words", [
    (np.diag([-1.0, 1.0, 1.0]), "mirrored"),
    (np.diag([20.0, 20.0, 1.0]), "scale"),
    (np.diag([1.0, 2.0, 1.0]), "stretched"),
    (np.array([[0, -1, 300], [1, 0, 0], [0, 0, 1.0]]), "rotated by 90 degrees"),
    (np.array([[1, 0, 0], [0, 1, 0], [-0.01, 0, 1.0]]), "infinity"),
])
def test_degenerate_homographies_are_named(h, words):
  assert words in alignment.degeneracy(h, (300, 400), alignment.AlignConfig())


def test_plausible_homography_is_not_degenerate():
  assert alignment.degeneracy(known_homography(), (512, 512), alignment.AlignConfig()) == ""


def test_unrelated_photos_are_skipped():
  result = alignment.align_pair(skdata.astronaut(), skdata.coffee())
  assert result.status == "skipped" and result.reason.startswith("too few matches")
  assert result.kept == 0 and not result.patches
