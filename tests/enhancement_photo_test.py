"""The per-photo use case (docs/method.md §7): enhance within the memory budget, whole
or tiled, at 8 or 16 bits; refusing what does not fit before decoding."""

import cv2
import numpy as np
import pytest

from dped_tf import image_io
from dped_tf.enhancement.executor import Enhancer
from dped_tf.enhancement.memory import MemorySettings
from dped_tf.enhancement.memory import OverBudget
from dped_tf.enhancement.photo import enhance_file
from dped_tf.enhancement.photo import enhance_pixels
from dped_tf.enhancement.photo import read_within_budget
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.photos import smooth_photo


@pytest.fixture(scope="module")
def enhancer():
  return Enhancer(random_weights_model())


def test_enhance_uint8_and_uint16_outputs(enhancer):
  pixels8 = smooth_photo(20, 26)
  expected = enhancer.whole(pixels8[None].astype(np.float32) / 255)[0]
  tiled = MemorySettings(enhancer.working_set, tile=9, mode="tiled")
  for dtype in (np.uint8, np.uint16):
    peak = np.iinfo(dtype).max
    for settings in (tiled, MemorySettings(enhancer.working_set, mode="whole")):
      got = enhance_pixels(enhancer, pixels8, dtype, settings)
      assert got.dtype == dtype and got.shape == (20, 26, 3)
      assert np.abs(got / peak - np.clip(expected, 0, 1)).max() <= 1e-3 + 0.5 / peak


def test_small_budget_reads_and_tiles_a_photo_near_its_limit(enhancer, tmp_path):
  """A 10 MB budget (as 108 MP to 1536 MB, scaled down): a 500x480 photo is read,
  tiled with its maps in files and equals whole-image inference; a 16-bit photo of the
  same size and an 8-bit one past the limit are refused before decoding, naming the
  file and the budget they need."""
  settings = MemorySettings(enhancer.working_set, budget=10 * 2**20, tmp_dir=str(tmp_path))
  pixels = smooth_photo(480, 500)
  assert 480 * 500 <= settings.max_pixels(1) < 480 * 500 * 2
  cv2.imwrite(str(tmp_path / "ok.png"), pixels[..., ::-1])
  cv2.imwrite(str(tmp_path / "deep.png"), pixels[..., ::-1].astype(np.uint16) * 257)
  cv2.imwrite(str(tmp_path / "big.png"), np.zeros((600, 500, 3), np.uint8))
  for name, height, bits in (("deep.png", 480, 16), ("big.png", 600, 8)):
    path = str(tmp_path / name)
    with pytest.raises(OverBudget, match=f"^{path}: 500x{height} .* MP, {bits}-bit") as e:
      read_within_budget(path, settings, ".png")
    assert e.value.needed == settings.needed_budget(500 * height, bits // 8, ".png")
    assert e.value.needed > settings.budget
  read = read_within_budget(str(tmp_path / "ok.png"), settings, ".png").pixels
  np.testing.assert_array_equal(read, pixels)
  assert not settings.use_whole(480, 500)
  got = enhance_pixels(enhancer, read, np.uint8, settings)
  expected = enhancer.whole(read[None].astype(np.float32) / 255)[0]
  assert np.abs(got / 255 - np.clip(expected, 0, 1)).max() <= 1e-3 + 0.5 / 255


@pytest.mark.parametrize("side_by_side", [False, True])
def test_enhance_file_writes_the_enhanced_photo(enhancer, tmp_path, side_by_side):
  """The file holds what `enhance_pixels` returns (PNG: lossless), with the alpha
  channel carried over; the input's pixels are released unless a comparison needs
  them."""
  pixels = smooth_photo(30, 20)
  alpha = np.arange(600, dtype=np.uint8).reshape(30, 20)
  cv2.imwrite(str(tmp_path / "a.png"), np.dstack([pixels[..., ::-1], alpha]))
  settings = MemorySettings(enhancer.working_set, side_by_side=side_by_side)
  before, after = enhance_file(str(tmp_path / "a.png"), str(tmp_path / "b.png"), enhancer,
                               settings, 95)
  written = image_io.read_photo(str(tmp_path / "b.png"))
  np.testing.assert_array_equal(written.pixels, after.pixels)
  np.testing.assert_array_equal(after.pixels, enhance_pixels(enhancer, pixels, np.uint8,
                                                             settings))
  np.testing.assert_array_equal(written.alpha, alpha)
  assert (before.pixels is not None) == side_by_side
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
