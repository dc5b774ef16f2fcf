"""Whole-image and exact tiled inference (docs/method.md §1): equal to the Keras generator."""

import numpy as np
import pytest

from dped_tf.testing.models import random_weights_model
from dped_tf import inference


@pytest.fixture(scope="module")
def model():
  return random_weights_model()


def photo(height, width, seed=1):
  """Smooth random colours plus noise, in [0, 1]."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:height, 0:width] / max(height, width)
  base = np.stack([np.sin(3 * x + 1), np.cos(5 * y), np.sin(2 * x * y + 2)], -1) * 0.4 + 0.5
  return np.clip(base + rng.normal(0, 0.05, base.shape), 0, 1).astype(np.float32)


def test_whole_image_matches_the_keras_generator(model):
  image = photo(33, 47)
  expected = model(image[None]).numpy()
  enhancer = inference.Enhancer.from_model(model)
  got = enhancer.whole(image[None])
  assert expected.std() > 0.05  # the output depends on the input
  np.testing.assert_allclose(got, expected, atol=1e-6)
  assert len(enhancer.stages) == 9  # cut before each of the 8 instance norms


@pytest.mark.parametrize("tile,on_disk", [(5, False), (7, True), (64, False)])
def test_tiled_equals_whole_image(model, tmp_path, tile, on_disk):
  """Tiles far smaller than the receptive field (many tiles, halos crossing several
  tiles and the border) still give the whole-image result: the statistics are exact."""
  image = photo(29, 41)
  expected = model(image[None]).numpy()[0]
  enhancer = inference.Enhancer.from_model(model)
  got = enhancer.tiled(image, tile=tile, max_memory=1 if on_disk else None,
                       tmp_dir=str(tmp_path))
  assert np.abs(got - expected).max() <= 3e-5
  assert not list(tmp_path.iterdir())  # temporary files are unlinked


def test_moments_combine_and_take_out_parts_exactly():
  """Per-channel count, mean and M2 combined over parts and a part taken back out
  (a window less its halo ring) equal numpy's over the remaining values."""
  rng = np.random.default_rng(0)
  parts = [rng.normal(3.0, 0.5, (n, 4)) for n in (50, 7, 300)]

  def moments_of(x):
    return len(x), x.mean(0), ((x - x.mean(0)) ** 2).sum(0)

  total = inference._Moments()
  for part in parts:
    total.add(*moments_of(part))
  total.remove(*moments_of(parts[1]))
  rest = np.concatenate([parts[0], parts[2]])
  assert total.n == len(rest)
  np.testing.assert_allclose(total.mean, rest.mean(0), rtol=1e-12)
  np.testing.assert_allclose(total.m2, ((rest - rest.mean(0)) ** 2).sum(0), rtol=1e-10)


def test_naive_tiling_would_differ(model):
  """Control: enhancing tiles independently changes the result (why stats are global)."""
  image = photo(32, 32)
  enhancer = inference.Enhancer.from_model(model)
  whole = enhancer.whole(image[None])[0]
  halves = np.concatenate([enhancer.whole(image[None, :, :16])[0],
                           enhancer.whole(image[None, :, 16:])[0]], axis=1)
  assert np.abs(halves - whole).max() > 0.01


@pytest.mark.parametrize("kind, norm", [("dped", "batch"), ("srcnn", None)])
def test_models_without_instance_norm_tile_with_halos_alone(kind, norm, tmp_path):
  """One stage; tiles far smaller than the receptive field, in RAM and on disk."""
  model = random_weights_model(kind, norm, seed=3)
  image = photo(21, 18)
  expected = model(image[None], training=False).numpy()[0]
  assert expected.std() > 0.05
  enhancer = inference.Enhancer.from_model(model)
  assert len(enhancer.stages) == 1
  for max_memory in (None, 1):
    got = enhancer.tiled(image, tile=6, max_memory=max_memory, tmp_dir=str(tmp_path))
    assert np.abs(got - expected).max() <= 3e-5
  # control: the same tiles without their halos differ
  halves = np.concatenate([model(image[None, :, :9]).numpy()[0],
                           model(image[None, :, 9:]).numpy()[0]], axis=1)
  assert np.abs(halves - expected).max() > 0.01


def test_bfloat16_tiled_equals_bfloat16_whole(model):
  image = photo(24, 30)
  enhancer = inference.Enhancer.from_model(model, "bfloat16")
  whole = enhancer.whole(image[None])[0]
  tiled = enhancer.tiled(image, tile=8)
  mse = np.mean((tiled - whole).astype(np.float64) ** 2)
  assert 10 * np.log10(1 / mse) >= 40  # bfloat16 rounding differs with tile shapes


def test_enhance_uint8_and_uint16_outputs(model):
  image = photo(20, 26)
  pixels8 = np.rint(image * 255).astype(np.uint8)
  enhancer = inference.Enhancer.from_model(model)
  expected = enhancer.whole(pixels8[None].astype(np.float32) / 255)[0]
  tiled = inference.MemorySettings(tile=9, mode="tiled")
  for dtype in (np.uint8, np.uint16):
    peak = np.iinfo(dtype).max
    for settings in (tiled, inference.MemorySettings(mode="whole")):
      got = inference.enhance(enhancer, pixels8, dtype, settings)
      assert got.dtype == dtype and got.shape == (20, 26, 3)
      assert np.abs(got / peak - np.clip(expected, 0, 1)).max() <= 1e-3 + 0.5 / peak


def test_auto_mode_and_tile_side_follow_the_budget():
  small = inference.MemorySettings(budget=64 * 2**20)
  large = inference.MemorySettings(budget=8 * 2**30)
  assert not small.use_whole(2000, 2000) and large.use_whole(1000, 1000)
  assert 64 <= small.tile_side() < large.tile_side() <= 512
  assert small.max_pixels() < 6000 * 4000 <= inference.MemorySettings().max_pixels()


def test_memory_arithmetic_by_hand():
  """The default 1536 MB budget: tile side sqrt(1536 MB / 4 / (6 * 64 * 4)) - 12 = 500,
  working set 6 * 512^2 * 256 B; photo buffers of 3 channels: 4 arrays for JPEG output
  (12 B per pixel at 8 bits, 24 at 16), 6 for other formats (18, 36), 2 while tiling
  (plus the working set); side by side 2 + 2 * (4 - 1) = 8 arrays for JPEG."""
  budget = 1536 * 2**20
  default = inference.MemorySettings()
  assert default.tile_side() == 500
  tiling_8 = (budget - 6 * 512 * 512 * 256) // 6
  assert default.max_pixels(1) == min(budget // 12, tiling_8) == budget // 12
  assert default.max_pixels(2) == budget // 24
  assert default.max_pixels(1, ".PNG") == budget // 18
  assert default.max_pixels(2, ".tif") == budget // 36
  assert inference.MemorySettings(side_by_side=True).max_pixels(1) == budget // 24
  assert default.refusal(12000, 9000, 1, ".jpg") is None  # 108 MP: 1.30e9 B of 1.61e9
  # PNG: 12000 * 9000 * 18 B = 1853.9 MB -> 1854 MB
  why = default.refusal(12000, 9000, 1, ".png")
  assert "108 MP, 8-bit" in why and "--max_memory to 1854 " in why
  assert inference.MemorySettings(budget=1854 * 2**20).refusal(12000, 9000, 1, ".png") is None
  # 10 MB: tile 64 (clamped), working set 6 * 76^2 * 256 B, tiling limits the size
  small = inference.MemorySettings(budget=10 * 2**20)
  assert small.tile_side() == 64
  assert small.max_pixels(1) == (10 * 2**20 - 6 * 76 * 76 * 256) // 6 < 10 * 2**20 // 12
  assert small.max_pixels(2) == (10 * 2**20 - 6 * 76 * 76 * 256) // 12


def test_small_budget_reads_and_tiles_a_photo_near_its_limit(model, tmp_path):
  """A 10 MB budget (as 108 MP to 1536 MB, scaled down): a 500x480 photo is read,
  tiled with its maps in files and equals whole-image inference; a 16-bit photo of the
  same size and an 8-bit one past the limit are refused with what to raise."""
  import cv2  # pylint: disable=import-outside-toplevel
  from dped_tf import image_io  # pylint: disable=import-outside-toplevel
  from dped_tf.errors import DpedError  # pylint: disable=import-outside-toplevel
  settings = inference.MemorySettings(budget=10 * 2**20, tmp_dir=str(tmp_path))
  pixels = np.rint(photo(480, 500) * 255).astype(np.uint8)
  assert 480 * 500 <= settings.max_pixels(1) < 480 * 500 * 2
  cv2.imwrite(str(tmp_path / "ok.png"), pixels[..., ::-1])
  cv2.imwrite(str(tmp_path / "deep.png"), pixels[..., ::-1].astype(np.uint16) * 257)
  cv2.imwrite(str(tmp_path / "big.png"), np.zeros((600, 500, 3), np.uint8))
  for name, bits in (("deep.png", 16), ("big.png", 8)):
    with pytest.raises(DpedError, match=f"{name}: .* MP, {bits}-bit.*raise --max_memory to"):
      image_io.read_photo(str(tmp_path / name), settings.refusal)
  read = image_io.read_photo(str(tmp_path / "ok.png"), settings.refusal).pixels
  np.testing.assert_array_equal(read, pixels)
  enhancer = inference.Enhancer.from_model(model)
  assert not settings.use_whole(480, 500)
  got = inference.enhance(enhancer, read, np.uint8, settings)
  expected = enhancer.whole(read[None].astype(np.float32) / 255)[0]
  assert np.abs(got / 255 - np.clip(expected, 0, 1)).max() <= 1e-3 + 0.5 / 255


def test_tiled_memory_stays_bounded(model, tmp_path):
  """1 MP in bfloat16 with a 64 MB budget: the peak RSS grows far less than the 4
  full-size maps (2 x 128 MB bfloat16, 2 x 256 MB float32) that staging in RAM holds."""
  image = (photo(1024, 1024) * 255).astype(np.uint8)
  enhancer = inference.Enhancer.from_model(model, "bfloat16")
  settings = inference.MemorySettings(budget=64 * 2**20, tmp_dir=str(tmp_path))
  inference.enhance(enhancer, image[:64, :64], np.uint8, settings)  # trace the graphs
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM
  before = _rss_mb("VmRSS")
  inference.enhance(enhancer, image, np.uint8, settings)
  assert _rss_mb("VmHWM") - before < 250


def _rss_mb(field):
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) / 1024
  raise AssertionError(field)
