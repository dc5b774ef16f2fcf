"""The memory budget of `dped-tf enhance` (docs/method.md §7): whole-image or tiled
inference, the tile side, and which photos fit. Pure arithmetic, light to import.

A model's working set (`WorkingSet`: its widest map's channels and widest stage halo)
comes from the model (`Enhancer.working_set`); the photo buffers per output format were
measured.
"""

import dataclasses
import math

from dped_tf.errors import DpedError

# The float32 maps one tile's stage (or the whole image) holds at once: its inputs and
# up to 4 maps in flight.
_LIVE_MAPS = 6
# Photo buffers, in units of one [H, W, 3] array at the photo's depth, at the peak of
# each phase of `dped-tf enhance`, as measured (VmHWM) on a 12 MP photo: decoding a JPEG
# holds Pillow's 4-byte pixels and the array twice (3.4 arrays); tiling the input and the
# output (2, plus one tile's float32 working set); encoding, with the input released,
# the output, its channel-swapped copy and the encoder's buffers: 2.4 arrays for JPEG,
# 3.6-3.9 for PNG and LZW TIFF, 5.6 for WebP and for an incompressible TIFF. A
# side-by-side comparison keeps the input and encodes a double-width copy.
_JPEG_ARRAYS = 4
_OTHER_FORMAT_ARRAYS = 6
_TILE_ARRAYS = 2


class OverBudget(DpedError):
  """A photo whose buffers do not fit the memory budget; `needed`: the least budget in
  bytes (a multiple of 1 MB) that takes it."""

  def __init__(self, message, needed):
    super().__init__(message)
    self.needed = needed


@dataclasses.dataclass(frozen=True)
class WorkingSet:
  """What a model's inference holds per pixel: maps of up to `channels` channels, and
  tiles grown by up to `halo` pixels on every side."""
  channels: int
  halo: int

  def bytes_per_pixel(self):
    """Bytes per pixel of the float32 maps alive at once (whole image or one tile)."""
    return _LIVE_MAPS * self.channels * 4

  def tile_bytes(self, th, tw):
    """One th x tw tile's working set, its window grown by the halo."""
    return self.bytes_per_pixel() * (th + 2 * self.halo) * (tw + 2 * self.halo)


@dataclasses.dataclass
class MemorySettings:
  """How `enhance` may use memory for a model of `working_set`: `budget` bytes for photo
  buffers and activations, the tile side (0: derived from the budget), the mode (auto:
  whole-image inference when it fits the budget, else tiled), the folder for
  activations over budget (None: the system's temporary folder), and whether a
  side-by-side comparison is written too. Tiled inference keeps only uint8 or uint16
  photos in RAM (float32 per tile, maps between stages in files when over budget), so
  the largest photo is set by the photo buffers, not the activations."""
  working_set: WorkingSet
  budget: int = 1536 * 2**20
  tile: int = 0
  mode: str = "auto"
  tmp_dir: str = None
  side_by_side: bool = False

  def photo_bytes_per_pixel(self, channel_bytes=1, ext=".jpg"):
    """Peak bytes per pixel of the photo buffers (8-bit: 1 channel byte, 16-bit: 2)
    when the output is written as `ext`."""
    arrays = _JPEG_ARRAYS if ext.lower() in (".jpg", ".jpeg") else _OTHER_FORMAT_ARRAYS
    if self.side_by_side:  # input, output, the comparison and its encoding
      arrays = 2 + 2 * (arrays - 1)
    return arrays * 3 * channel_bytes

  def max_pixels(self, channel_bytes=1, ext=".jpg"):
    """The largest photo whose buffers fit the budget while decoding and encoding, and
    whose input, output and one tile's working set fit it while tiling."""
    side = self.tile_side()
    tiling = self.budget - self.working_set.tile_bytes(side, side)
    return max(0, min(self.budget // self.photo_bytes_per_pixel(channel_bytes, ext),
                      tiling // (_TILE_ARRAYS * 3 * channel_bytes)))

  def needed_budget(self, pixels, channel_bytes=1, ext=".jpg"):
    """The least budget (whole MB, then 64 MB steps) whose `max_pixels` is `pixels` or
    more; at least this one."""
    least = -(-pixels * self.photo_bytes_per_pixel(channel_bytes, ext) // 2**20) * 2**20
    need = dataclasses.replace(self, budget=max(self.budget, least))
    while need.max_pixels(channel_bytes, ext) < pixels:
      need.budget += 64 * 2**20
    return need.budget

  def check_fits(self, width, height, channel_bytes=1, ext=".jpg"):
    """Raises OverBudget when a width x height photo written as `ext` cannot be
    enhanced within the budget."""
    pixels = width * height
    if pixels <= self.max_pixels(channel_bytes, ext):
      return
    raise OverBudget(
        f"{width}x{height} pixels ({pixels / 1e6:.0f} MP, {8 * channel_bytes}-bit) is "
        f"over the {self.max_pixels(channel_bytes, ext) / 1e6:.0f} MP that fit the "
        f"memory budget of {self.budget // 2**20} MB (photo buffers for {ext} output: "
        f"{self.photo_bytes_per_pixel(channel_bytes, ext)} bytes per pixel)",
        self.needed_budget(pixels, channel_bytes, ext))

  def tile_side(self):
    """Largest tile whose working set fits a quarter of the budget, within 64..512."""
    if self.tile:
      return self.tile
    side = (int(math.sqrt(self.budget / 4 / self.working_set.bytes_per_pixel()))
            - 2 * self.working_set.halo)
    return max(64, min(512, side))

  def use_whole(self, height, width, channel_bytes=1):
    """Whether a height x width photo is enhanced whole (else in tiles)."""
    if self.mode == "auto":
      per_pixel = self.working_set.bytes_per_pixel() + self.photo_bytes_per_pixel(channel_bytes)
      return height * width * per_pixel <= self.budget
    return self.mode == "whole"

  def map_budget(self, height, width, channel_bytes=1):
    """What tiling a height x width photo leaves of the budget for the maps between
    stages (beyond it they go to files in `tmp_dir`)."""
    return self.budget - height * width * _TILE_ARRAYS * 3 * channel_bytes
