"""Whole-image and exact tiled inference of any generator with bounded memory
(docs/method.md §1, 7).

Whole-image inference is the Keras model itself, `model(x)`, under the chosen
precision. Instance norm makes every output pixel depend on whole-image statistics
(docs/method.md §1), so tiles cannot be enhanced independently: the tiled executor
runs the model's own `tiling_stages()` (dped_tf/modeling/tiling.py) one after the
other, each over every tile with its halo. A stage that opens with an instance norm is
given that norm's whole-image statistics, which the stage before measured tile by tile
(per-tile moments combined exactly in float64). Every convolution is computed once,
plus the halos; the result equals whole-image inference up to float rounding. A model
without instance norm (SRCNN, batch-norm DPED) is one stage: tiles with halos alone.
The maps between stages stay in RAM while they fit the memory budget and go to
unlinked temporary files otherwise, so that the resident memory is bounded by the tile
size, not the photo size.
"""

import collections
import dataclasses
import math
import os
import tempfile

import numpy as np
import tensorflow as tf

from dped_tf import precision as precisions
from dped_tf.errors import DpedError
from dped_tf.modeling.layers import InstanceNorm

# What the memory budget assumes of a tile's working set: the DPED generator's
# 64-channel maps and its widest halo (the tail: conv10 1 + conv11 1 + conv12 4).
_CH = 64
_FINAL_HALO = 6


class Enhancer:
  """A generator (any model with `tiling_stages`) under one precision: `whole` runs
  `model(x)`, `tiled` the exact tiled executor over the same layers."""

  def __init__(self, model, precision="float32", jit_compile=False):
    self.precision = precisions.resolve(precision)
    self.model = precisions.with_precision(model, self.precision)
    self.stages = self.model.tiling_stages()
    self._whole = tf.function(lambda x: self.model(x, training=False),
                              jit_compile=jit_compile, reduce_retracing=True)
    self._plan = _StagePlan(self.stages)
    self._tile_fns = [tf.function(self._tile_fn(i), jit_compile=jit_compile,
                                  reduce_retracing=True) for i in range(len(self.stages))]

  @classmethod
  def from_model(cls, model, precision="float32", jit_compile=False):
    return cls(model, precision, jit_compile)

  def whole(self, images):
    """[B, H, W, 3] float32 in [0, 1] -> enhanced float32 [B, H, W, 3]."""
    return self._whole(tf.convert_to_tensor(images, tf.float32)).numpy()

  def _tile_fn(self, index):
    """Stage `index` on one window: the tile cores of the maps kept, and the moments of
    the maps a later norm needs, over the core's part inside the image (`valid`)."""
    stage = self.stages[index]
    keep, measure = self._plan.keep[index], self._plan.measure[index]

    def run(maps, stats, inside, valid):
      out = stage.fn(maps, stats, inside, False)
      h = stage.halo
      cores = {n: out[n][0, h:tf.shape(out[n])[1] - h, h:tf.shape(out[n])[2] - h]
               for n in keep}
      moments = {n: InstanceNorm.partial_moments(cores[n][None, :valid[0], :valid[1]])
                 for n in measure}
      return cores, moments

    return run

  def tiled(self, image, out=None, tile=512, max_memory=None, tmp_dir=None):
    """Enhances one [H, W, 3] image (uint8, uint16 or float in [0, 1]) in tiles of
    `tile` x `tile` pixels. Writes into `out` ([H, W, 3], uint8, uint16 or float32;
    created as float32 if None) and returns it. The maps between stages are kept in
    RAM when they fit `max_memory` bytes (None: no limit), else in files in `tmp_dir`.
    """
    height, width = image.shape[:2]
    if out is None:
      out = np.empty((height, width, 3), np.float32)
    plan = _TilePlan(height, width, tile)
    item = np.dtype(tf.as_dtype(self.model.compute_dtype).as_numpy_dtype).itemsize
    maps = height * width * self._plan.peak_channels * item
    on_disk = max_memory is not None and maps > max_memory - plan.working_bytes()
    with _Storage(height, width, tmp_dir if on_disk else None) as storage:
      self._run_stages(image, out, plan, storage)
    return out

  def _run_stages(self, image, out, plan, storage):
    height, width = plan.height, plan.width
    maps = {"image": _Photo(image)}
    windows = collections.defaultdict(_Window)  # one reused buffer per map name
    stats = {}
    peak = np.iinfo(out.dtype).max if out.dtype.kind == "u" else None
    for index, stage in enumerate(self.stages):
      norm_stats = None
      if stage.norm is not None:
        moments = stats[stage.norm_input]
        norm_stats = (tf.constant(moments.mean, tf.float32),
                      tf.constant(moments.m2 / moments.n, tf.float32))
      written = {}
      measured = {n: _Moments() for n in self._plan.measure[index]}
      h = stage.halo
      for y0, x0 in plan.tiles():
        window = (y0 - h, x0 - h, plan.th + 2 * h, plan.tw + 2 * h)
        inputs = {n: maps[n].read(*window, windows[n])[None] for n in stage.reads}
        valid = (min(plan.th, height - y0), min(plan.tw, width - x0))
        cores, moments = self._tile_fns[index](inputs, norm_stats,
                                               _inside(window, height, width),
                                               tf.constant(valid))
        for name, core in cores.items():
          if name == "rgb":
            rgb = np.asarray(core)[:valid[0], :valid[1]]
            if peak is not None:
              rgb = np.rint(np.clip(rgb, 0.0, 1.0) * peak)
            out[y0:y0 + valid[0], x0:x0 + valid[1]] = rgb
            continue
          if name not in written:
            written[name] = storage.new(core.shape[-1], core.dtype)
          written[name].write(y0, x0, core)
        for name, m in moments.items():
          measured[name].add(*(np.asarray(v) for v in m))
      for name in self._plan.release[index]:
        storage.recycle(maps.pop(name))
      for name, target in written.items():
        if name in maps:
          storage.recycle(maps[name])
        maps[name] = target
      stats.update(measured)


class _StagePlan:
  """Which maps each stage keeps (read later), measures (for a later norm) and
  releases (read for the last time), and the most map channels alive at once."""

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


def _inside(window, height, width):
  """[1, h, w, 1] float32 mask of the window's pixels inside the image; None when the
  window lies wholly inside it."""
  y0, x0, h, w = window
  if y0 >= 0 and x0 >= 0 and y0 + h <= height and x0 + w <= width:
    return None
  rows = (np.arange(y0, y0 + h) >= 0) & (np.arange(y0, y0 + h) < height)
  cols = (np.arange(x0, x0 + w) >= 0) & (np.arange(x0, x0 + w) < width)
  return (rows[:, None] & cols[None, :]).astype(np.float32)[None, :, :, None]


class _Photo:
  """The input photo as a map: float32 in [0, 1], zeros outside."""

  def __init__(self, pixels):
    self.pixels, self.scale = pixels, _input_scale(pixels.dtype)

  def read(self, y0, x0, h, w, window=None):  # pylint: disable=unused-argument
    return _read_array(self.pixels, y0, x0, h, w).astype(np.float32) * np.float32(self.scale)

  def close(self):
    self.pixels = None


def _input_scale(dtype):
  return 1.0 / np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0


def _read_array(array, y0, x0, h, w):
  """array[y0:y0+h, x0:x0+w] with zeros where the window leaves the array."""
  ys, ye = max(y0, 0), min(y0 + h, array.shape[0])
  xs, xe = max(x0, 0), min(x0 + w, array.shape[1])
  if (ys, ye, xs, xe) == (y0, y0 + h, x0, x0 + w):
    return np.ascontiguousarray(array[ys:ye, xs:xe])
  buf = np.zeros((h, w) + array.shape[2:], array.dtype)
  if ys < ye and xs < xe:
    buf[ys - y0:ye - y0, xs - x0:xe - x0] = array[ys:ye, xs:xe]
  return buf


class _Moments:
  """Per-channel count, mean and M2 combined over tiles in float64 (Chan et al.)."""

  def __init__(self):
    self.n, self.mean, self.m2 = 0.0, 0.0, 0.0

  def add(self, n, mean, m2):
    n = float(n)
    if n == 0:
      return
    mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
    total = self.n + n
    delta = mean - self.mean
    self.mean = self.mean + delta * (n / total)
    self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
    self.n = total


class _TilePlan:
  """Tiles of th x tw covering the image."""

  def __init__(self, height, width, tile):
    if tile < 1:
      raise DpedError(f"tile size must be positive, got {tile}")
    self.height, self.width = height, width
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    self.th, self.tw = math.ceil(height / rows), math.ceil(width / cols)
    self.rows, self.cols = rows, cols

  def tiles(self):
    for i in range(self.rows):
      for j in range(self.cols):
        yield i * self.th, j * self.tw

  def working_bytes(self):
    """What one tile's stage needs at most: the tail's inputs and 4 maps in flight."""
    return _TilePlan.working_bytes_for(self.th, self.tw)

  @staticmethod
  def working_bytes_for(th, tw=None):
    halo = 2 * _FINAL_HALO
    return 6 * (th + halo) * ((th if tw is None else tw) + halo) * _CH * 4


class _Storage:
  """Creates [H, W, C] maps in RAM or in unlinked files under
  `tmp_dir`, and recycles the maps a stage no longer needs for the next stage's
  outputs: no map is allocated (and its pages faulted in) twice."""

  def __init__(self, height, width, tmp_dir):
    self.shape = (height, width)
    self.tmp_dir = tmp_dir
    self.maps, self.free = [], []

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    for m in self.maps:
      m.close()

  def new(self, channels, dtype):
    shape, dtype = (*self.shape, channels), tf.as_dtype(dtype)
    for m in self.free:
      if (m.shape, m.dtype) == (shape, dtype):
        self.free.remove(m)
        return m
    m = _FileMap(shape, dtype, self.tmp_dir) if self.tmp_dir else _RamMap(shape, dtype)
    self.maps.append(m)
    return m

  def recycle(self, m):
    if m in self.maps:
      self.free.append(m)


class _RamMap:
  """A map in a NumPy array."""

  def __init__(self, shape, dtype):
    self.shape, self.dtype = shape, dtype
    self.array = np.empty(shape, dtype.as_numpy_dtype)

  def read(self, y0, x0, h, w, window):
    buf = window.buffer(y0, x0, h, w, self.shape, self.array.dtype)
    ys, ye = max(y0, 0), min(y0 + h, self.shape[0])
    xs, xe = max(x0, 0), min(x0 + w, self.shape[1])
    if ys < ye and xs < xe:
      buf[ys - y0:ye - y0, xs - x0:xe - x0] = self.array[ys:ye, xs:xe]
    return _as_tensor(buf)

  def write(self, y0, x0, core):
    h = min(core.shape[0], self.shape[0] - y0)
    w = min(core.shape[1], self.shape[1] - x0)
    self.array[y0:y0 + h, x0:x0 + w] = np.asarray(core)[:h, :w]

  def close(self):
    self.array = None


class _Window:
  """A reused 64-byte-aligned buffer for windows of a map, zeroed where a window leaves
  the image (as SAME padding does): no window allocates (and faults in) new pages."""

  def __init__(self):
    self.array = None

  def buffer(self, y0, x0, h, w, shape, dtype):
    if self.array is None or self.array.shape != (h, w, shape[2]) or self.array.dtype != dtype:
      size = h * w * shape[2] * dtype.itemsize
      raw = np.empty(size + 64, np.uint8)
      start = -raw.ctypes.data % 64
      self.array = raw[start:start + size].view(dtype).reshape(h, w, shape[2])
    if y0 < 0 or x0 < 0 or y0 + h > shape[0] or x0 + w > shape[1]:
      self.array.fill(0)
    return self.array


def _as_tensor(array):
  """A tensor sharing an aligned array's memory (TensorFlow copies any other NumPy
  input). The array must not change while the tensor is in use: windows are reused
  only after the tile graph that read them has returned. DLPack has no bfloat16: those
  travel as uint16 and are bit-cast back, which copies nothing either."""
  if array.dtype == tf.bfloat16.as_numpy_dtype:
    bits = tf.experimental.dlpack.from_dlpack(array.view(np.uint16).__dlpack__())
    return tf.bitcast(bits, tf.bfloat16)
  return tf.experimental.dlpack.from_dlpack(array.__dlpack__())


class _FileMap:
  """A map in an unlinked temporary file, read and written row by row with pread and
  pwrite (no mmap: file pages never count as the process's resident memory)."""

  def __init__(self, shape, dtype, tmp_dir):
    self.shape, self.dtype = shape, dtype
    self.item = np.dtype(dtype.as_numpy_dtype)
    self.row = shape[1] * shape[2] * self.item.itemsize
    self.pixel = shape[2] * self.item.itemsize
    try:
      fd, path = tempfile.mkstemp(prefix="dped-tiles-", dir=tmp_dir)
      os.unlink(path)
      os.ftruncate(fd, shape[0] * self.row)
    except OSError as e:
      raise DpedError(f"{tmp_dir}: cannot create a temporary tile file ({e.strerror})") from None
    self.fd = fd

  def read(self, y0, x0, h, w, window):
    buf = window.buffer(y0, x0, h, w, self.shape, self.item)
    ys, ye = max(y0, 0), min(y0 + h, self.shape[0])
    xs, xe = max(x0, 0), min(x0 + w, self.shape[1])
    raw = buf.view(np.uint8).reshape(h, w * self.pixel)
    for y in range(ys, ye):
      view = raw[y - y0, (xs - x0) * self.pixel:(xe - x0) * self.pixel]
      os.preadv(self.fd, [view], y * self.row + xs * self.pixel)
    return _as_tensor(buf)

  def write(self, y0, x0, core):
    h = min(core.shape[0], self.shape[0] - y0)
    w = min(core.shape[1], self.shape[1] - x0)
    rows = np.asarray(core)[:h, :w].view(np.uint8).reshape(h, w * self.pixel)
    for r in range(h):
      os.pwritev(self.fd, [rows[r]], (y0 + r) * self.row + x0 * self.pixel)

  def close(self):
    if self.fd is not None:
      os.close(self.fd)
      self.fd = None


# Whole-image inference: bytes per pixel of the float32 input and the live 64-channel maps.
_WHOLE_BYTES_PER_PIXEL = 1536
# Photo buffers, in units of one [H, W, 3] array at the photo's depth, at the peak of
# each phase of `dped-tf enhance` (docs/method.md §7), as measured (VmHWM) on a 12 MP
# photo: decoding a JPEG holds Pillow's 4-byte pixels and the array twice (3.4 arrays);
# tiling the input and the output (2, plus one tile's float32 working set); encoding,
# with the input released, the output, its channel-swapped copy and the encoder's
# buffers: 2.4 arrays for JPEG, 3.6-3.9 for PNG and LZW TIFF, 5.6 for WebP and for an
# incompressible TIFF. A side-by-side comparison keeps the input and encodes a
# double-width copy.
_JPEG_ARRAYS = 4
_OTHER_FORMAT_ARRAYS = 6
_TILE_ARRAYS = 2


@dataclasses.dataclass
class MemorySettings:
  """How `enhance` may use memory: `budget` bytes for photo buffers and activations,
  the tile side (0: derived from the budget), the mode (auto: whole-image inference
  when it fits the budget, else tiled), the folder for activations over budget, and
  whether a side-by-side comparison is written too. Tiled inference keeps only uint8 or
  uint16 photos in RAM (float32 per tile, maps between stages in files when over
  budget), so the largest photo is set by the photo buffers, not the activations."""
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
    tiling = self.budget - _TilePlan.working_bytes_for(self.tile_side())
    return max(0, min(self.budget // self.photo_bytes_per_pixel(channel_bytes, ext),
                      tiling // (_TILE_ARRAYS * 3 * channel_bytes)))

  def refusal(self, width, height, channel_bytes=1, ext=".jpg"):
    """Why a width x height photo written as `ext` cannot be enhanced within the
    budget, or None."""
    pixels = width * height
    if pixels <= self.max_pixels(channel_bytes, ext):
      return None
    per_pixel = self.photo_bytes_per_pixel(channel_bytes, ext)
    least = -(-pixels * per_pixel // 2**20) * 2**20
    need = MemorySettings(budget=max(self.budget, least), tile=self.tile,
                          side_by_side=self.side_by_side)
    while need.max_pixels(channel_bytes, ext) < pixels:
      need.budget += 64 * 2**20
    return (f"{width}x{height} pixels ({pixels / 1e6:.0f} MP, {8 * channel_bytes}-bit) is "
            f"over the {self.max_pixels(channel_bytes, ext) / 1e6:.0f} MP that fit the "
            f"memory budget of {self.budget // 2**20} MB (photo buffers for {ext} output: "
            f"{per_pixel} bytes per pixel); raise --max_memory to {need.budget // 2**20} "
            f"or more")

  def tile_side(self):
    """Largest tile whose working set fits a quarter of the budget, within 64..512."""
    if self.tile:
      return self.tile
    side = int(math.sqrt(self.budget / 4 / (6 * _CH * 4))) - 2 * _FINAL_HALO
    return max(64, min(512, side))

  def use_whole(self, height, width, channel_bytes=1):
    if self.mode == "auto":
      per_pixel = _WHOLE_BYTES_PER_PIXEL + self.photo_bytes_per_pixel(channel_bytes)
      return height * width * per_pixel <= self.budget
    return self.mode == "whole"


def enhance(enhancer, pixels, out_dtype, settings=None):
  """Enhances an [H, W, 3] uint8/uint16 photo; returns [H, W, 3] of `out_dtype`."""
  settings = settings or MemorySettings()
  height, width = pixels.shape[:2]
  channel_bytes = pixels.dtype.itemsize
  if settings.use_whole(height, width, channel_bytes):
    rgb = enhancer.whole(pixels[None].astype(np.float32) * _input_scale(pixels.dtype))[0]
    return np.rint(np.clip(rgb, 0.0, 1.0) * np.iinfo(out_dtype).max).astype(out_dtype)
  out = np.empty((height, width, 3), out_dtype)
  activations = settings.budget - height * width * _TILE_ARRAYS * 3 * channel_bytes
  return enhancer.tiled(pixels, out, settings.tile_side(), activations,
                        settings.tmp_dir or tempfile.gettempdir())
