"""The memory budget of `dped-tf enhance` (docs/method.md §7): its arithmetic by hand."""

import pytest

from dped_tf.enhancement.memory import MemorySettings
from dped_tf.enhancement.memory import OverBudget
from dped_tf.enhancement.memory import WorkingSet

# The DPED generator's: 64-channel maps, widest halo 6 (the tail: conv10 1 + conv11 1 +
# conv12 4), as `Enhancer.working_set` finds them (enhancement_executor_test.py).
DPED = WorkingSet(channels=64, halo=6)


def test_auto_mode_and_tile_side_follow_the_budget():
  small = MemorySettings(DPED, budget=64 * 2**20)
  large = MemorySettings(DPED, budget=8 * 2**30)
  assert not small.use_whole(2000, 2000) and large.use_whole(1000, 1000)
  assert 64 <= small.tile_side() < large.tile_side() <= 512
  assert small.max_pixels() < 6000 * 4000 <= MemorySettings(DPED).max_pixels()
  assert MemorySettings(DPED, tile=77).tile_side() == 77
  assert MemorySettings(DPED, mode="whole").use_whole(9000, 12000)
  assert not MemorySettings(DPED, budget=8 * 2**30, mode="tiled").use_whole(10, 10)


def test_memory_arithmetic_by_hand():
  """The default 1536 MB budget: tile side sqrt(1536 MB / 4 / (6 * 64 * 4)) - 12 = 500,
  working set 6 * 512^2 * 256 B; photo buffers of 3 channels: 4 arrays for JPEG output
  (12 B per pixel at 8 bits, 24 at 16), 6 for other formats (18, 36), 2 while tiling
  (plus the working set); side by side 2 + 2 * (4 - 1) = 8 arrays for JPEG; whole-image
  inference of 1536 B per pixel plus the photo buffers."""
  budget = 1536 * 2**20
  default = MemorySettings(DPED)
  assert DPED.bytes_per_pixel() == 1536 and DPED.tile_bytes(500, 500) == 6 * 512 * 512 * 256
  assert default.tile_side() == 500
  tiling_8 = (budget - 6 * 512 * 512 * 256) // 6
  assert default.max_pixels(1) == min(budget // 12, tiling_8) == budget // 12
  assert default.max_pixels(2) == budget // 24
  assert default.max_pixels(1, ".PNG") == budget // 18
  assert default.max_pixels(2, ".tif") == budget // 36
  assert MemorySettings(DPED, side_by_side=True).max_pixels(1) == budget // 24
  # 1536 + 12 B per pixel: 1610612736 / 1548 = 1040447.5 pixels
  assert default.use_whole(1000, 1040) and not default.use_whole(1000, 1041)
  assert default.map_budget(1000, 2000, 2) == budget - 1000 * 2000 * 2 * 3 * 2
  default.check_fits(12000, 9000, 1, ".jpg")  # 108 MP: 1.30e9 B of 1.61e9
  # PNG: 12000 * 9000 * 18 B = 1853.9 MB -> 1854 MB
  with pytest.raises(OverBudget, match=r"^12000x9000 pixels \(108 MP, 8-bit\) is over the 89 MP "
                     r"that fit the memory budget of 1536 MB \(photo buffers for .png output: "
                     r"18 bytes per pixel\)$") as refused:
    default.check_fits(12000, 9000, 1, ".png")
  assert refused.value.needed == 1854 * 2**20
  MemorySettings(DPED, budget=1854 * 2**20).check_fits(12000, 9000, 1, ".png")
  # 10 MB: tile 64 (clamped), working set 6 * 76^2 * 256 B, tiling limits the size
  small = MemorySettings(DPED, budget=10 * 2**20)
  assert small.tile_side() == 64
  assert small.max_pixels(1) == (10 * 2**20 - 6 * 76 * 76 * 256) // 6 < 10 * 2**20 // 12
  assert small.max_pixels(2) == (10 * 2**20 - 6 * 76 * 76 * 256) // 12


def test_needed_budget_is_the_least_that_fits():
  """Whole MB from the photo buffers, then 64 MB steps while tiling limits the size."""
  small = MemorySettings(DPED, budget=10 * 2**20)
  for width, height, channel_bytes in ((500, 600, 1), (500, 480, 2), (4000, 3000, 1)):
    need = small.needed_budget(width * height, channel_bytes)
    assert MemorySettings(DPED, budget=need).max_pixels(channel_bytes) >= width * height
    assert need % 2**20 == 0
    least = -(-width * height * 12 * channel_bytes // 2**20) * 2**20
    assert need == least or MemorySettings(
        DPED, budget=need - 64 * 2**20).max_pixels(channel_bytes) < width * height


def test_working_set_scales_the_tile_side():
  """Wider maps or halos leave smaller tiles in the same budget."""
  budget = 1536 * 2**20
  assert MemorySettings(WorkingSet(64, 18), budget).tile_side() == 512 - 36
  assert MemorySettings(WorkingSet(32, 6), budget).tile_side() == 512
  assert MemorySettings(WorkingSet(256, 6), budget).tile_side() == 256 - 12
