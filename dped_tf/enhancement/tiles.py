"""Tile planning for exact tiled inference (docs/method.md §7): pure arithmetic, no
TensorFlow, no I/O.

A photo is cut into a grid of tile cores that cover every pixel once; a stage runs on
each core grown by the stage's halo and clipped to the image (each convolution's SAME
padding supplies the zeros beyond the edge, as for the whole image). The stage plan says,
for the model's `tiling_stages()` (dped_tf/modeling/tiling.py), which maps each stage
keeps, measures and releases, and how many map channels are alive at once.
"""

import math

from dped_tf.errors import DpedError


class TilePlan:
  """Tiles of `th` x `tw` (as equal as `tile` allows) covering a `height` x `width`
  image in `rows` x `cols`; a core or window is (y0, x0, y1, x1)."""

  def __init__(self, height, width, tile):
    if tile < 1:
      raise DpedError(f"tile size must be positive, got {tile}")
    self.height, self.width = height, width
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    self.th, self.tw = math.ceil(height / rows), math.ceil(width / cols)
    self.rows, self.cols = math.ceil(height / self.th), math.ceil(width / self.tw)

  def tiles(self):
    """The cores, row by row."""
    for y0 in range(0, self.height, self.th):
      for x0 in range(0, self.width, self.tw):
        yield y0, x0, min(y0 + self.th, self.height), min(x0 + self.tw, self.width)

  def window(self, core, halo):
    """The core grown by `halo` on every side, clipped to the image."""
    y0, x0, y1, x1 = core
    return (max(y0 - halo, 0), max(x0 - halo, 0), min(y1 + halo, self.height),
            min(x1 + halo, self.width))

  def cores_in(self, window):
    """The cores that overlap `window`."""
    y0, x0, y1, x1 = window
    for ty in range(y0 // self.th * self.th, y1, self.th):
      for tx in range(x0 // self.tw * self.tw, x1, self.tw):
        yield ty, tx, min(ty + self.th, self.height), min(tx + self.tw, self.width)

  def index(self, core):
    """The core's place in row-major order (its slot in a tile-major file)."""
    return core[0] // self.th * self.cols + core[1] // self.tw


def core_box(core, window):
  """The core inside its window: (top, left, height, width)."""
  return (core[0] - window[0], core[1] - window[1], core[2] - core[0], core[3] - core[1])


class StagePlan:
  """Which maps each of `stages` keeps (read later, or the output "rgb"), measures (for
  a later stage's norm) and releases (read for the last time), and the most map
  channels alive at once (`peak_channels`, what the maps between stages take)."""

  def __init__(self, stages):
    last_read = {}
    for i, stage in enumerate(stages):
      for name in stage.reads:
        last_read[name] = i
    self.keep = [[n for n, _ in s.writes if n == "rgb" or last_read.get(n, -1) > i]
                 for i, s in enumerate(stages)]
    self.measure = [[] for _ in stages]
    for j, stage in enumerate(stages):
      if stage.norm is None:
        continue
      writers = [i for i in range(j) if stage.norm_input in dict(stages[i].writes)]
      if not writers:
        raise ValueError(f"stage {j}: no earlier stage writes {stage.norm_input!r}")
      self.measure[writers[-1]].append(stage.norm_input)
    self.release = [[n for n in s.reads if last_read[n] == i and n != "image"
                     and n not in self.keep[i]] for i, s in enumerate(stages)]
    channels = {n: c for s in stages for n, c in s.writes}
    self.peak_channels = 0
    for i, stage in enumerate(stages):
      alive = {n for n, last in last_read.items() if last >= i and n != "image"}
      alive |= {n for n in self.keep[i] if n != "rgb"}
      # a map rewritten by its reader has two versions alive
      twice = {n for n in stage.reads if n in dict(stage.writes) and n in self.keep[i]}
      self.peak_channels = max(self.peak_channels, sum(channels[n] for n in alive)
                               + sum(channels[n] for n in twice))
