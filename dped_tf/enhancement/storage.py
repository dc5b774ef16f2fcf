"""The maps between stages of exact tiled inference (docs/method.md §7), in RAM or in
temporary files, and the buffers that hand windows to TensorFlow.

A map is the tile cores its stage wrote; a window is assembled once from the cores it
overlaps, into a reused 64-byte-aligned buffer that TensorFlow reads through DLPack
without a copy (bfloat16 travels as its uint16 bits: NumPy has no bfloat16), and a map
in RAM keeps views of TensorFlow's output windows, no copy either. Their gain was never
measured alone: an A/B at 0.8 MP in bfloat16 on a loaded 2-core machine was within its
+-25% noise (docs/method.md §7).
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from dped_tf.errors import DpedError

IOV_MAX_ROWS = 512  # rows per preadv/pwritev call, within the kernel's IOV_MAX


class MapFolderFull(DpedError):
  """A temporary map file that cannot be created or written; `folder`: where."""

  def __init__(self, message, folder):
    super().__init__(message)
    self.folder = folder


def storage_dtype(dtype):
  """The NumPy dtype holding a map of TensorFlow `dtype` (bfloat16: its uint16 bits)."""
  return np.dtype(np.uint16) if dtype == tf.bfloat16 else np.dtype(dtype.as_numpy_dtype)


def to_bits(x):
  """bfloat16 as uint16 (the same bytes, which NumPy can view), else `x`."""
  return tf.bitcast(x, tf.uint16) if x.dtype == tf.bfloat16 else x


def as_tensor(array, dtype):
  """A [1, h, w, C] tensor of `dtype` sharing an aligned array's memory (TensorFlow
  copies any other NumPy input; bfloat16 bit-cast back from its uint16 bits without a
  copy). The array must not change while the tensor is in use: buffers are reused only
  after the tile graph that read them has returned."""
  tensor = tf.experimental.dlpack.from_dlpack(array[None].__dlpack__())
  return tf.bitcast(tensor, tf.bfloat16) if dtype == tf.bfloat16 else tensor


def input_scale(dtype):
  """What maps a photo of `dtype` to [0, 1]: 1 / its peak for integers."""
  return 1.0 / np.iinfo(dtype).max if np.dtype(dtype).kind == "u" else 1.0


class WindowBuffer:
  """A reused 64-byte-aligned buffer for the windows of one map: no window allocates
  (and faults in) new pages."""

  def __init__(self):
    self.raw = None

  def get(self, h, w, channels, dtype):
    size = h * w * channels * dtype.itemsize
    if self.raw is None or self.raw.size < size + 64:
      self.raw = np.empty(size + 64, np.uint8)
    start = -self.raw.ctypes.data % 64
    return self.raw[start:start + size].view(dtype).reshape(h, w, channels)


class PhotoMap:
  """The input photo (uint8, uint16 or float in [0, 1]) as a map: float32 in [0, 1]."""

  def __init__(self, pixels):
    self.pixels, self.scale = pixels, np.float32(input_scale(pixels.dtype))

  def read(self, window, buffer):
    y0, x0, y1, x1 = window
    buf = buffer.get(y1 - y0, x1 - x0, self.pixels.shape[2], np.dtype(np.float32))
    np.multiply(self.pixels[y0:y1, x0:x1], self.scale, out=buf)
    return as_tensor(buf, tf.float32)

  def close(self):
    self.pixels = None


class TileFiles:
  """Unlinked temporary files in `folder` for the maps of one photo (`plan`: its
  TilePlan): a file is gone when its map is closed, or the process ends."""

  def __init__(self, plan, folder):
    self.plan, self.folder = plan, folder

  def file(self, size):
    """A new file descriptor of an unlinked file of `size` bytes."""
    fd = None
    try:
      fd, path = tempfile.mkstemp(prefix="dped-tiles-", dir=self.folder)
      os.unlink(path)
      os.ftruncate(fd, size)
    except OSError as e:
      if fd is not None:
        os.close(fd)
      raise self.full(f"cannot create a temporary tile file ({e.strerror})", size) from None
    return fd

  def full(self, what, size):
    """The error for a temporary file that cannot be created or written."""
    return MapFolderFull(f"{self.folder}: {what}; each map of a {self.plan.width}x"
                         f"{self.plan.height} photo takes {size / 2**30:.1f} GB there",
                         self.folder)


class TileMap:
  """A map of `channels` as the tile cores its stage wrote: in RAM as views of
  TensorFlow's output windows (no copy), or with `files` in a file, core after core in
  tile-major order (pread and pwrite, no mmap: file pages never count as the process's
  resident memory)."""

  def __init__(self, plan, channels, dtype, files):
    self.plan, self.channels, self.dtype, self.files = plan, channels, dtype, files
    self.item = storage_dtype(dtype)
    self.pixel = channels * self.item.itemsize
    self.slot = plan.th * plan.tw * self.pixel  # file bytes per core
    self.size = plan.rows * plan.cols * self.slot
    self.ram = {}  # core origin -> view
    self.fd = files.file(self.size) if files else None

  def write(self, core, view):
    """Stores `view`, the [h, w, C] core `core` (y0, x0, y1, x1)."""
    if self.fd is None:
      self.ram[core[:2]] = view
      return
    offset = self.plan.index(core) * self.slot
    rows = [view[r] for r in range(view.shape[0])]
    for i in range(0, len(rows), IOV_MAX_ROWS):
      chunk = rows[i:i + IOV_MAX_ROWS]
      try:
        done = os.pwritev(self.fd, chunk, offset + i * view.shape[1] * self.pixel)
        why = None if done == sum(r.nbytes for r in chunk) else "short write"
      except OSError as e:
        why = e.strerror
      if why:
        raise self.files.full(f"cannot write a temporary tile file ({why})", self.size)

  def read(self, window, buffer):
    """The window assembled from the cores it overlaps, as a [1, h, w, C] tensor."""
    wy0, wx0, wy1, wx1 = window
    buf = buffer.get(wy1 - wy0, wx1 - wx0, self.channels, self.item)
    raw = buf.view(np.uint8).reshape(wy1 - wy0, (wx1 - wx0) * self.pixel)
    for core in self.plan.cores_in(window):
      cy0, cx0, cy1, cx1 = core
      ys, ye, xs, xe = max(cy0, wy0), min(cy1, wy1), max(cx0, wx0), min(cx1, wx1)
      if self.fd is None:
        stored = self.ram[cy0, cx0]
        buf[ys - wy0:ye - wy0, xs - wx0:xe - wx0] = stored[ys - cy0:ye - cy0, xs - cx0:xe - cx0]
        continue
      rows = [raw[y - wy0, (xs - wx0) * self.pixel:(xe - wx0) * self.pixel]
              for y in range(ys, ye)]
      row = (cx1 - cx0) * self.pixel
      start = self.plan.index(core) * self.slot + (ys - cy0) * row + (xs - cx0) * self.pixel
      if xe - xs == cx1 - cx0:
        # whole core rows are one range of the file: one preadv (12 MP reads 5.1 -> 4.0 s)
        for i in range(0, len(rows), IOV_MAX_ROWS):
          os.preadv(self.fd, rows[i:i + IOV_MAX_ROWS], start + i * row)
      else:
        for i, dest in enumerate(rows):
          os.preadv(self.fd, [dest], start + i * row)
    return as_tensor(buf, self.dtype)

  def close(self):
    self.ram = {}
    if self.fd is not None:
      os.close(self.fd)
      self.fd = None
