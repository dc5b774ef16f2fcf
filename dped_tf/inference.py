"""Whole-image and exact tiled generator inference with bounded memory (docs/method.md §1, 7).

Instance norm makes every output pixel depend on whole-image statistics (docs/method.md §1), so
tiles cannot be enhanced independently. The tiled engine runs the generator in nine
stages, one per norm layer plus the tail: stage k reads the stored pre-norm activation
of stage k - 1 tile by tile (with a 1-pixel halo), normalises it with the now-known
whole-image statistics, applies the next 3x3 convolution and stores its pre-norm output
while accumulating that layer's per-channel statistics (per-tile float32 moments from
the fused batch-norm kernel, combined exactly in float64). Every convolution is computed
once, plus the halos; the result equals whole-image inference up to float rounding. The
stored maps (the pre-norm map in the compute dtype, the residual input in float32; 64
channels each, two of each alive at a time) stay in RAM while they fit the memory
budget and go to unlinked temporary files otherwise, so that the resident memory is
bounded by the tile size, not the photo size.
"""

import dataclasses
import math
import os
import tempfile

import numpy as np
import tensorflow as tf

from dped_tf.errors import DpedError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
MFLOP_PER_PIXEL = 0.8  # docs/method.md §1
_CH = 64
_FINAL_HALO = 6  # conv10 (1) + conv11 (1) + conv12 (4)
_FIRST_HALO = 5  # conv1 (4) + block0's first conv (1)


def resolve_precision(name):
  """`auto`: float16 on a GPU, bfloat16 on a CPU with AMX/AVX512-BF16, else float32."""
  from dped_tf.precision import cpu_has_bf16  # pylint: disable=import-outside-toplevel
  if name not in PRECISIONS:
    raise DpedError(f"precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
  if name != "auto":
    return name
  if tf.config.list_physical_devices("GPU"):
    return "float16"
  return "bfloat16" if cpu_has_bf16() else "float32"


@dataclasses.dataclass
class GeneratorWeights:
  """The generator's parameters as float32 arrays, independent of its dtype policy.

  `norm_affine[k]` is (shift, scale); `norm_stats[k]` is (mean, variance) for batch
  norm (fixed at inference) and None for instance norm (computed per image).
  """
  convs: list
  norm_affine: list
  norm_stats: list
  epsilon: float

  @classmethod
  def from_model(cls, model):
    convs = [tuple(np.asarray(v, np.float32) for v in (c.kernel, c.bias))
             for c in model.conv_layers()]
    affine, stats = [], []
    for layer in model.norm_layers():
      if model.norm == "instance":
        affine.append((np.asarray(layer.shift, np.float32), np.asarray(layer.scale, np.float32)))
        stats.append(None)
      else:
        affine.append((np.asarray(layer.beta, np.float32), np.asarray(layer.gamma, np.float32)))
        stats.append((np.asarray(layer.moving_mean, np.float64),
                      np.asarray(layer.moving_variance, np.float64)))
    return cls(convs, affine, stats, float(model.norm_layers()[0].epsilon))


def _conv(x, kernel, bias, padding):
  return tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, padding), bias)


def _conv_to_rgb(x, rows, bias, padding):
  """conv12 (9x9, 64 -> 3): a 9x1 convolution to 27 channels (3 per column offset),
  then 9 shifted sums. The same products as the direct form, ~3x faster on oneDNN,
  which handles 3 output channels poorly. The sums are in float32."""
  y = tf.cast(tf.nn.conv2d(x, rows, 1, padding), tf.float32)
  if padding == "SAME":
    y = tf.pad(y, [[0, 0], [0, 0], [4, 4], [0, 0]])
  width = tf.shape(y)[2] - 8
  return tf.add_n([y[:, :, j:j + width, 3 * j:3 * j + 3] for j in range(9)]) + tf.cast(
      bias, tf.float32)


def _finish(x):
  return tf.tanh(tf.cast(x, tf.float32)) * 0.58 + 0.5


class Enhancer:
  """Runs a generator's weights in float32, bfloat16 or float16 (convolutions in that
  dtype; norm statistics and affine in float32, as `InstanceNorm` does)."""

  def __init__(self, weights, precision="float32", jit_compile=False):
    self.weights = weights
    self.precision = resolve_precision(precision)
    self.dtype = tf.as_dtype(self.precision)
    self.store_dtype = self.dtype.as_numpy_dtype
    self._convs = [(tf.constant(k, self.dtype), tf.constant(b, self.dtype))
                   for k, b in weights.convs]
    kernel, bias = weights.convs[11]
    rows = kernel.transpose(0, 2, 1, 3).reshape(9, 1, kernel.shape[2], 27)
    self._convs[11] = (tf.constant(rows, self.dtype), tf.constant(bias, self.dtype))
    self._whole = tf.function(self._whole_fn, jit_compile=jit_compile, reduce_retracing=True)
    self._first = tf.function(self._first_fn, jit_compile=jit_compile, reduce_retracing=True)
    self._middle = tf.function(self._middle_fn, jit_compile=jit_compile, reduce_retracing=True)
    self._last = tf.function(self._last_fn, jit_compile=jit_compile, reduce_retracing=True)

  @classmethod
  def from_model(cls, model, precision="float32", jit_compile=False):
    return cls(GeneratorWeights.from_model(model), precision, jit_compile)

  def _apply_norm(self, a, norm):
    """ReLU(norm(a)) in float32; `norm` = (scale, shift, mean, variance) or, for a
    [1, H, W, C] map, (scale, shift) to normalise with its own statistics (instance
    norm). One fused (oneDNN) batch-norm kernel does either."""
    eps = self.weights.epsilon
    if len(norm) == 2:
      y = tf.compat.v1.nn.fused_batch_norm(a, *norm, epsilon=eps, is_training=True)[0]
    else:
      y = tf.compat.v1.nn.fused_batch_norm(a, norm[0], norm[1], mean=norm[2], variance=norm[3],
                                           epsilon=eps, is_training=False)[0]
    return tf.nn.relu(tf.cast(y, tf.float32))

  def _affine(self, k):
    return tuple(tf.constant(v, tf.float32) for v in reversed(self.weights.norm_affine[k]))

  # Whole-image inference: the generator's graph (docs/method.md §1) on [B, H, W, 3] at once. The
  # residual stream stays in float32 whatever the convolutions' dtype.

  def _norm_whole(self, x, k):
    known = self.weights.norm_stats[k]
    if known is not None:
      return self._apply_norm(x, self._affine(k) + tuple(tf.constant(v, tf.float32)
                                                         for v in known))
    if x.shape[0] == 1:
      return self._apply_norm(x, self._affine(k))
    mean, var = tf.nn.moments(tf.cast(x, tf.float32), axes=[1, 2], keepdims=True)
    scale, shift = self._affine(k)
    y = (tf.cast(x, tf.float32) - mean) * tf.math.rsqrt(var + self.weights.epsilon)
    return tf.nn.relu(y * scale + shift)

  def _whole_fn(self, images):
    c, dt = self._convs, self.dtype
    x = tf.cast(tf.nn.relu(_conv(tf.cast(images, dt), *c[0], "SAME")), tf.float32)
    for b in range(4):
      y = self._norm_whole(_conv(tf.cast(x, dt), *c[1 + 2 * b], "SAME"), 2 * b)
      x = x + self._norm_whole(_conv(tf.cast(y, dt), *c[2 + 2 * b], "SAME"), 2 * b + 1)
    x = tf.nn.relu(_conv(tf.cast(x, dt), *c[9], "SAME"))
    x = tf.nn.relu(_conv(x, *c[10], "SAME"))
    return _finish(_conv_to_rgb(x, *c[11], "SAME"))

  def whole(self, images):
    """[B, H, W, 3] float32 in [0, 1] -> enhanced float32 [B, H, W, 3]."""
    return self._whole(tf.convert_to_tensor(images, tf.float32)).numpy()

  # Tiled stages. Each tile function gets its input with a halo, zeroes whatever lies
  # outside the image before every convolution (SAME padding), runs VALID convolutions
  # and returns the tile core plus that core's moments (over pixels inside the image).

  @staticmethod
  def _inside(shape, y0, x0, height, width):
    """[h, w, 1] mask of the pixels of a tile at (y0, x0) that lie inside the image."""
    rows = tf.range(shape[0]) + y0
    cols = tf.range(shape[1]) + x0
    r = tf.cast((rows >= 0) & (rows < height), tf.float32)
    c = tf.cast((cols >= 0) & (cols < width), tf.float32)
    return (r[:, None] * c[None, :])[..., None]

  def _mask(self, x, origin, masked):
    if not masked:
      return x
    return x * tf.cast(self._inside(tf.shape(x)[1:3], *origin), x.dtype)[None]

  @staticmethod
  def _moments(a, y0, x0, height, width, masked):
    """(count, mean, M2) per channel of the part of a [1, h, w, C] tile core inside the
    image (a rectangle), from the fused batch-norm kernel (one pass; its variance has
    the n - 1 divisor)."""
    if masked:
      a = a[:, :tf.minimum(tf.shape(a)[1], height - y0), :tf.minimum(tf.shape(a)[2], width - x0)]
    ones, zeros = tf.ones(a.shape[-1:]), tf.zeros(a.shape[-1:])
    _, mean, var = tf.compat.v1.nn.fused_batch_norm(a, ones, zeros, is_training=True)[:3]
    n = tf.cast(tf.shape(a)[1] * tf.shape(a)[2], tf.float32)
    return n, mean, tf.where(n > 1, var * (n - 1), tf.zeros_like(var))

  @staticmethod
  def _origin(y0, x0, halo, height, width):
    return (y0 - halo, x0 - halo, height, width)

  def _first_fn(self, image, y0, x0, height, width, masked):
    """Input tile (halo 5) -> (x0 core, block0's first pre-norm map, its moments)."""
    c = self._convs
    x = tf.nn.relu(_conv(tf.cast(image, self.dtype)[None], *c[0], "VALID"))
    x = self._mask(tf.cast(x, tf.float32), self._origin(y0, x0, 1, height, width), masked)
    a = _conv(tf.cast(x, self.dtype), *c[1], "VALID")
    return x[0, 1:-1, 1:-1], a[0], self._moments(a, y0, x0, height, width, masked)

  def _middle_fn(self, a, skip, norm, conv, y0, x0, height, width, masked):
    """Stored pre-norm map (halo 1) -> norm, ReLU (+ residual input) -> next conv."""
    x = self._apply_norm(a[None], norm)
    if skip is not None:
      x = x + skip[None]
    x = self._mask(x, self._origin(y0, x0, 1, height, width), masked)
    out = _conv(tf.cast(x, self.dtype), *conv, "VALID")
    core = x[0, 1:-1, 1:-1] if skip is not None else None
    return core, out[0], self._moments(out, y0, x0, height, width, masked)

  def _last_fn(self, a, skip, norm, y0, x0, height, width, masked):
    """Block3's last pre-norm map and input (halo 6) -> enhanced RGB core."""
    c = self._convs
    halo = _FINAL_HALO
    x = self._apply_norm(a[None], norm) + skip[None]
    x = self._mask(x, self._origin(y0, x0, halo, height, width), masked)
    x = tf.nn.relu(_conv(tf.cast(x, self.dtype), *c[9], "VALID"))
    x = self._mask(x, self._origin(y0, x0, halo - 1, height, width), masked)
    x = tf.nn.relu(_conv(x, *c[10], "VALID"))
    x = self._mask(x, self._origin(y0, x0, halo - 2, height, width), masked)
    return _finish(_conv_to_rgb(x, *c[11], "VALID"))[0]

  def tiled(self, image, out=None, tile=512, max_memory=None, tmp_dir=None):
    """Enhances one [H, W, 3] image (uint8, uint16 or float in [0, 1]) in tiles of
    `tile` x `tile` pixels. Writes into `out` ([H, W, 3], uint8, uint16 or float32;
    created as float32 if None) and returns it. Activations are kept in RAM when
    their 4 maps fit `max_memory` bytes (None: no limit), else in files in `tmp_dir`.
    """
    height, width = image.shape[:2]
    if out is None:
      out = np.empty((height, width, 3), np.float32)
    plan = _TilePlan(height, width, tile)
    item = np.dtype(self.store_dtype).itemsize
    maps = 2 * height * width * _CH * (item + 4)  # 2 pre-norm maps, 2 float32 residuals
    on_disk = max_memory is not None and maps > max_memory - plan.working_bytes()
    with _Storage(height, width, tmp_dir if on_disk else None) as storage:
      self._run_stages(image, out, plan, storage)
    return out

  def _stage_norm(self, k, stats):
    """(scale, shift, mean, variance) of norm layer k: measured or fixed (batch norm)."""
    known = self.weights.norm_stats[k]
    mean, var = known if known is not None else (stats.mean, stats.m2 / stats.n)
    return self._affine(k) + (tf.constant(mean, tf.float32), tf.constant(var, tf.float32))

  def _run_stages(self, image, out, plan, storage):
    height, width = plan.height, plan.width
    dims = (tf.constant(height), tf.constant(width))
    scale = _input_scale(image.dtype)
    skip = storage.new(np.float32)  # residual input of the current block
    a = storage.new(self.store_dtype)  # pre-norm map of the current stage
    stats = _Moments()
    for y0, x0, masked in plan.tiles():
      src = _read_array(image, y0 - _FIRST_HALO, x0 - _FIRST_HALO, plan.th + 2 * _FIRST_HALO,
                        plan.tw + 2 * _FIRST_HALO).astype(np.float32) * scale
      x_core, a_core, m = self._first(src, tf.constant(y0), tf.constant(x0), *dims, masked)
      skip.write(y0, x0, x_core.numpy())
      a.write(y0, x0, a_core.numpy())
      stats.add(*m)
    for k in range(1, 8):
      norm = self._stage_norm(k - 1, stats)
      residual = k % 2 == 0  # norm k - 1 closes a block: add its input, start the next
      conv = self._convs[k + 1]
      a_next = storage.new(self.store_dtype)
      skip_next = storage.new(np.float32) if residual else None
      stats = _Moments()
      for y0, x0, masked in plan.tiles():
        a_in = a.read(y0 - 1, x0 - 1, plan.th + 2, plan.tw + 2)
        s_in = skip.read(y0 - 1, x0 - 1, plan.th + 2, plan.tw + 2) if residual else None
        x_core, a_core, m = self._middle(a_in, s_in, norm, conv, tf.constant(y0),
                                         tf.constant(x0), *dims, masked)
        if residual:
          skip_next.write(y0, x0, x_core.numpy())
        a_next.write(y0, x0, a_core.numpy())
        stats.add(*m)
      a.close()
      a = a_next
      if residual:
        skip.close()
        skip = skip_next
    norm = self._stage_norm(7, stats)
    peak = np.iinfo(out.dtype).max if out.dtype.kind == "u" else None
    for y0, x0, masked in plan.tiles():
      size = (plan.th + 2 * _FINAL_HALO, plan.tw + 2 * _FINAL_HALO)
      rgb = self._last(a.read(y0 - _FINAL_HALO, x0 - _FINAL_HALO, *size),
                       skip.read(y0 - _FINAL_HALO, x0 - _FINAL_HALO, *size), norm,
                       tf.constant(y0), tf.constant(x0), *dims, masked).numpy()
      rgb = rgb[:min(plan.th, height - y0), :min(plan.tw, width - x0)]
      if peak is not None:
        rgb = np.rint(np.clip(rgb, 0.0, 1.0) * peak)
      out[y0:y0 + rgb.shape[0], x0:x0 + rgb.shape[1]] = rgb
    a.close()
    skip.close()


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
  """Tiles of th x tw covering the image; a tile is `masked` when its largest window
  (the core plus the tail's halo) leaves the image."""

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
        y0, x0 = i * self.th, j * self.tw
        masked = (min(y0, x0) < _FINAL_HALO or y0 + self.th + _FINAL_HALO > self.height
                  or x0 + self.tw + _FINAL_HALO > self.width)
        yield y0, x0, masked

  def working_bytes(self):
    """What one tile's stage needs at most: the tail's inputs and 4 maps in flight."""
    halo = 2 * _FINAL_HALO
    return 6 * (self.th + halo) * (self.tw + halo) * _CH * 4


class _Storage:
  """Creates [H, W, 64] maps in RAM or in unlinked files under `tmp_dir`."""

  def __init__(self, height, width, tmp_dir):
    self.shape = (height, width, _CH)
    self.tmp_dir = tmp_dir
    self.maps = []

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    for m in self.maps:
      m.close()

  def new(self, dtype):
    m = _FileMap(self.shape, dtype, self.tmp_dir) if self.tmp_dir else _RamMap(self.shape, dtype)
    self.maps.append(m)
    return m


class _RamMap:

  def __init__(self, shape, dtype):
    self.array = np.empty(shape, dtype)

  def read(self, y0, x0, h, w):
    return _read_array(self.array, y0, x0, h, w)

  def write(self, y0, x0, core):
    h = min(core.shape[0], self.array.shape[0] - y0)
    w = min(core.shape[1], self.array.shape[1] - x0)
    self.array[y0:y0 + h, x0:x0 + w] = core[:h, :w]

  def close(self):
    self.array = None


class _FileMap:
  """A map in an unlinked temporary file, read and written row by row with pread and
  pwrite (no mmap: file pages never count as the process's resident memory)."""

  def __init__(self, shape, dtype, tmp_dir):
    self.shape, self.dtype = shape, np.dtype(dtype)
    self.row = shape[1] * shape[2] * self.dtype.itemsize
    self.pixel = shape[2] * self.dtype.itemsize
    try:
      fd, path = tempfile.mkstemp(prefix="dped-tiles-", dir=tmp_dir)
      os.unlink(path)
      os.ftruncate(fd, shape[0] * self.row)
    except OSError as e:
      raise DpedError(f"{tmp_dir}: cannot create a temporary tile file ({e.strerror})") from None
    self.fd = fd

  def read(self, y0, x0, h, w):
    buf = np.zeros((h, w, self.shape[2]), self.dtype)
    ys, ye = max(y0, 0), min(y0 + h, self.shape[0])
    xs, xe = max(x0, 0), min(x0 + w, self.shape[1])
    raw = buf.view(np.uint8).reshape(h, w * self.pixel)
    for y in range(ys, ye):
      view = raw[y - y0, (xs - x0) * self.pixel:(xe - x0) * self.pixel]
      os.preadv(self.fd, [view], y * self.row + xs * self.pixel)
    return buf

  def write(self, y0, x0, core):
    h = min(core.shape[0], self.shape[0] - y0)
    w = min(core.shape[1], self.shape[1] - x0)
    raw = np.ascontiguousarray(core[:h, :w]).view(np.uint8).reshape(h, w * self.pixel)
    for r in range(h):
      os.pwritev(self.fd, [raw[r]], (y0 + r) * self.row + x0 * self.pixel)

  def close(self):
    if self.fd is not None:
      os.close(self.fd)
      self.fd = None


# Bytes per pixel: photo buffers (decoded input, uint8/16 output, encoder copy) and
# whole-image inference (the float32 input and the live 64-channel maps).
_IMAGE_BYTES_PER_PIXEL = 16
_WHOLE_BYTES_PER_PIXEL = 1536


@dataclasses.dataclass
class MemorySettings:
  """How `enhance` may use memory: `budget` bytes for photo buffers and activations,
  the tile side (0: derived from the budget), the mode (auto: whole-image inference
  when it fits the budget, else tiled) and the folder for activations over budget."""
  budget: int = 1536 * 2**20
  tile: int = 0
  mode: str = "auto"
  tmp_dir: str = None

  def max_pixels(self):
    """The largest photo whose buffers take at most half the budget."""
    return self.budget // (2 * _IMAGE_BYTES_PER_PIXEL)

  def tile_side(self):
    """Largest tile whose working set fits a quarter of the budget, within 64..512."""
    if self.tile:
      return self.tile
    side = int(math.sqrt(self.budget / 4 / (6 * _CH * 4))) - 2 * _FINAL_HALO
    return max(64, min(512, side))

  def use_whole(self, height, width):
    if self.mode == "auto":
      return height * width * (_WHOLE_BYTES_PER_PIXEL + _IMAGE_BYTES_PER_PIXEL) <= self.budget
    return self.mode == "whole"


def enhance(enhancer, pixels, out_dtype, settings=None):
  """Enhances an [H, W, 3] uint8/uint16 photo; returns [H, W, 3] of `out_dtype`."""
  settings = settings or MemorySettings()
  height, width = pixels.shape[:2]
  if settings.use_whole(height, width):
    rgb = enhancer.whole(pixels[None].astype(np.float32) * _input_scale(pixels.dtype))[0]
    return np.rint(np.clip(rgb, 0.0, 1.0) * np.iinfo(out_dtype).max).astype(out_dtype)
  out = np.empty((height, width, 3), out_dtype)
  activations = settings.budget - height * width * _IMAGE_BYTES_PER_PIXEL
  return enhancer.tiled(pixels, out, settings.tile_side(), activations,
                        settings.tmp_dir or tempfile.gettempdir())
