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
Windows are clipped to the image (each convolution's SAME padding gives the zeros
beyond it), a map between stages is the tile cores TensorFlow wrote, kept without a
copy, and each window is assembled once from the cores it overlaps. The maps stay in
RAM while they fit the memory budget and go to unlinked temporary files otherwise, so
that the resident memory is bounded by the tile size, not the photo size.
"""

import collections
import concurrent.futures
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
    """Stage `index` on one window: the whole output windows of the maps kept (bfloat16
    as its bits, which NumPy can view), and for the maps a later norm needs the moments
    of the window and of its ring around the tile's core (`core`: top, left, height,
    width inside the window): the core's are the difference, and the window's come from
    one fused kernel over the output as it is, without a copy of the core."""
    stage = self.stages[index]
    keep, measure = self._plan.keep[index], self._plan.measure[index]

    def run(maps, stats, core):
      out = stage.fn(maps, stats, False)
      moments = {n: (InstanceNorm.partial_moments(out[n]), _ring_moments(out[n], core))
                 for n in measure}
      return {n: _to_bits(out[n]) for n in keep}, moments

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
    self._run_stages(image, out, plan, _Files(plan, tmp_dir) if on_disk else None)
    return out

  def _run_stages(self, image, out, plan, files):
    """Every stage over every tile. A tile's window is its core plus the stage's halo,
    clipped to the image; a map keeps the cores its stage wrote, as views of
    TensorFlow's output windows (no copy) or in a file of `files` (`_TileMap`). File
    writes go to a writer thread while the next tile computes, one tile's writes in
    flight at most, all done before the next stage reads (12 MP: 9% faster, as the
    kernel's writeback of dirty pages throttles the writer; neutral at 1 MP)."""
    maps = {"image": _Photo(image)}
    windows = collections.defaultdict(_Window)  # one reused input buffer per map name
    stats = {}
    peak = np.iinfo(out.dtype).max if out.dtype.kind == "u" else None
    dtype = tf.as_dtype(self.model.compute_dtype)
    writer = concurrent.futures.ThreadPoolExecutor(1, "dped-tiles-writer") if files else None
    pending = []
    try:
      for index, stage in enumerate(self.stages):
        norm_stats = None
        if stage.norm is not None:
          moments = stats[stage.norm_input]
          norm_stats = (tf.constant(moments.mean, tf.float32),
                        tf.constant(moments.m2 / moments.n, tf.float32))
        written = {n: _TileMap(plan, c, dtype, files) for n, c in stage.writes
                   if n in self._plan.keep[index] and n != "rgb"}
        measured = {n: _Moments() for n in self._plan.measure[index]}
        for core in plan.tiles():
          window = plan.window(core, stage.halo)
          inputs = {n: maps[n].read(window, windows[n]) for n in stage.reads}
          box = (core[0] - window[0], core[1] - window[1], core[2] - core[0],
                 core[3] - core[1])
          kept, moments = self._tile_fns[index](inputs, norm_stats, tf.constant(box))
          for done in pending:  # at most one tile's writes in flight
            done.result()
          pending = []
          for name, tensor in kept.items():
            view = np.from_dlpack(tensor)[0, box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
            if name == "rgb":
              out[core[0]:core[2], core[1]:core[3]] = (
                  view if peak is None else np.rint(np.clip(view, 0.0, 1.0) * peak))
            elif writer:
              pending.append(writer.submit(written[name].write, core, view))
            else:
              written[name].write(core, view)
          for name, (whole, ring) in moments.items():  # the core: window less its ring
            measured[name].add(*(np.asarray(v) for v in whole))
            measured[name].remove(*(np.asarray(v) for v in ring))
        for done in pending:
          done.result()
        pending = []
        for name in self._plan.release[index]:
          maps.pop(name).close()
        for name, target in written.items():
          if name in maps:
            maps[name].close()
          maps[name] = target
        stats.update(measured)
    finally:
      if writer:
        writer.shutdown(wait=True, cancel_futures=True)
      for m in maps.values():
        m.close()
      if files:
        files.close()


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


def _ring_moments(x, core):
  """(count, mean, M2) per channel, in float32, of a [1, h, w, C] window outside its
  `core` (top, left, height, width): the halo ring, a few pixels wide."""
  top, left, height, width = core[0], core[1], core[2], core[3]
  strips = (x[0, :top], x[0, top + height:], x[0, top:top + height, :left],
            x[0, top:top + height, left + width:])
  ring = tf.cast(tf.concat([tf.reshape(s, [-1, x.shape[-1]]) for s in strips], 0), tf.float32)
  n = tf.cast(tf.shape(ring)[0], tf.float32)
  mean = tf.reduce_sum(ring, 0) / tf.maximum(n, 1.0)
  return n, mean, tf.reduce_sum(tf.square(ring - mean), 0)


def _to_bits(x):
  """bfloat16 as uint16 (the same bytes; NumPy has no bfloat16 for DLPack), else `x`."""
  return tf.bitcast(x, tf.uint16) if x.dtype == tf.bfloat16 else x


def _storage_dtype(dtype):
  """The NumPy dtype holding a map of TensorFlow `dtype` (bfloat16: its uint16 bits)."""
  return np.dtype(np.uint16) if dtype == tf.bfloat16 else np.dtype(dtype.as_numpy_dtype)


def _as_tensor(array, dtype):
  """A [1, h, w, C] tensor of `dtype` sharing an aligned array's memory (TensorFlow
  copies any other NumPy input; bfloat16 travels as its uint16 bits, bit-cast back
  without a copy). The array must not change while the tensor is in use: windows are
  reused only after the tile graph that read them has returned."""
  tensor = tf.experimental.dlpack.from_dlpack(array[None].__dlpack__())
  return tf.bitcast(tensor, tf.bfloat16) if dtype == tf.bfloat16 else tensor


class _Photo:
  """The input photo as a map: float32 in [0, 1]."""

  def __init__(self, pixels):
    self.pixels, self.scale = pixels, np.float32(_input_scale(pixels.dtype))

  def read(self, window, buffer):
    y0, x0, y1, x1 = window
    buf = buffer.get(y1 - y0, x1 - x0, self.pixels.shape[2], np.dtype(np.float32))
    np.multiply(self.pixels[y0:y1, x0:x1], self.scale, out=buf)
    return _as_tensor(buf, tf.float32)

  def close(self):
    self.pixels = None


def _input_scale(dtype):
  return 1.0 / np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0


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

  def remove(self, n, mean, m2):
    """Takes out a part already counted (the inverse of `add`)."""
    n = float(n)
    if n == 0:
      return
    mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
    rest = self.n - n
    rest_mean = (self.n * self.mean - n * mean) / rest
    delta = mean - rest_mean
    self.m2 = self.m2 - m2 - delta * delta * (rest * n / self.n)
    self.mean, self.n = rest_mean, rest


class _TilePlan:
  """Tiles of th x tw covering the image; a tile's core is (y0, x0, y1, x1)."""

  def __init__(self, height, width, tile):
    if tile < 1:
      raise DpedError(f"tile size must be positive, got {tile}")
    self.height, self.width = height, width
    rows, cols = math.ceil(height / tile), math.ceil(width / tile)
    self.th, self.tw = math.ceil(height / rows), math.ceil(width / cols)
    self.rows, self.cols = math.ceil(height / self.th), math.ceil(width / self.tw)

  def tiles(self):
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

  def working_bytes(self):
    """What one tile's stage needs at most: the tail's inputs and 4 maps in flight."""
    return _TilePlan.working_bytes_for(self.th, self.tw)

  @staticmethod
  def working_bytes_for(th, tw=None):
    halo = 2 * _FINAL_HALO
    return 6 * (th + halo) * ((th if tw is None else tw) + halo) * _CH * 4


class _Window:
  """A reused 64-byte-aligned input buffer for the windows of one map: no window
  allocates (and faults in) new pages."""

  def __init__(self):
    self.raw = None

  def get(self, h, w, channels, dtype):
    size = h * w * channels * dtype.itemsize
    if self.raw is None or self.raw.size < size + 64:
      self.raw = np.empty(size + 64, np.uint8)
    start = -self.raw.ctypes.data % 64
    return self.raw[start:start + size].view(dtype).reshape(h, w, channels)


class _Files:
  """Unlinked temporary files in `tmp_dir` for the maps of one photo. A closed map's
  file is given to the next map of its size, whose writes then overwrite pages the page
  cache already holds."""

  def __init__(self, plan, tmp_dir):
    self.plan, self.tmp_dir = plan, tmp_dir
    self.spare = []

  def file(self, size):
    for spare in self.spare:
      if spare[1] == size:
        self.spare.remove(spare)
        return spare[0]
    fd = None
    try:
      fd, path = tempfile.mkstemp(prefix="dped-tiles-", dir=self.tmp_dir)
      os.unlink(path)
      os.ftruncate(fd, size)
    except OSError as e:
      if fd is not None:
        os.close(fd)
      raise self.full(f"cannot create a temporary tile file ({e.strerror})", size) from None
    return fd

  def full(self, what, size):
    """The error for a temporary file that cannot be created or written."""
    return DpedError(f"{self.tmp_dir}: {what}; each map of a {self.plan.width}x"
                     f"{self.plan.height} photo takes {size / 2**30:.1f} GB there (choose "
                     "another --tmp_dir)")

  def give_back(self, fd, size):
    self.spare.append((fd, size))

  def close(self):
    for fd, _ in self.spare:
      os.close(fd)
    self.spare = []


class _TileMap:
  """A map as the tile cores its stage wrote: in RAM as views of TensorFlow's output
  windows (no copy), or with `files` in a file, core after core (pread and pwrite, no
  mmap: file pages never count as the process's resident memory). A window is
  assembled from the cores it overlaps."""

  def __init__(self, plan, channels, dtype, files):
    self.plan, self.channels, self.dtype, self.files = plan, channels, dtype, files
    self.item = _storage_dtype(dtype)
    self.pixel = channels * self.item.itemsize
    self.slot = plan.th * plan.tw * self.pixel  # file bytes per core
    self.size = plan.rows * plan.cols * self.slot
    self.ram = {}  # core origin -> view
    self.fd = files.file(self.size) if files else None

  def _offset(self, y0, x0):
    return (y0 // self.plan.th * self.plan.cols + x0 // self.plan.tw) * self.slot

  def write(self, core, view):
    if self.fd is None:
      self.ram[core[:2]] = view
      return
    offset = self._offset(*core[:2])
    rows = [view[r] for r in range(view.shape[0])]
    for i in range(0, len(rows), 512):  # within IOV_MAX
      try:
        done = os.pwritev(self.fd, rows[i:i + 512], offset + i * view.shape[1] * self.pixel)
        why = None if done == sum(r.nbytes for r in rows[i:i + 512]) else "short write"
      except OSError as e:
        why = e.strerror
      if why:
        raise self.files.full(f"cannot write a temporary tile file ({why})", self.size)

  def read(self, window, buffer):
    wy0, wx0, wy1, wx1 = window
    buf = buffer.get(wy1 - wy0, wx1 - wx0, self.channels, self.item)
    raw = buf.view(np.uint8).reshape(wy1 - wy0, (wx1 - wx0) * self.pixel)
    for cy0, cx0, cy1, cx1 in self.plan.cores_in(window):
      ys, ye, xs, xe = max(cy0, wy0), min(cy1, wy1), max(cx0, wx0), min(cx1, wx1)
      if self.fd is None:
        core = self.ram[cy0, cx0]
        buf[ys - wy0:ye - wy0, xs - wx0:xe - wx0] = core[ys - cy0:ye - cy0, xs - cx0:xe - cx0]
        continue
      rows = [raw[y - wy0, (xs - wx0) * self.pixel:(xe - wx0) * self.pixel]
              for y in range(ys, ye)]
      row = (cx1 - cx0) * self.pixel
      start = self._offset(cy0, cx0) + (ys - cy0) * row + (xs - cx0) * self.pixel
      if xe - xs == cx1 - cx0:  # whole core rows: one contiguous range of the file
        for i in range(0, len(rows), 512):  # within IOV_MAX
          os.preadv(self.fd, rows[i:i + 512], start + i * row)
      else:
        for i, dest in enumerate(rows):
          os.preadv(self.fd, [dest], start + i * row)
    return _as_tensor(buf, self.dtype)

  def close(self):
    self.ram = {}
    if self.fd is not None:
      self.files.give_back(self.fd, self.size)
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
