"""The per-photo use case (docs/method.md §7): read within the memory budget, enhance
whole or in tiles, encode, write atomically. The one path of `dped-tf enhance`, the
enhance page and the experiments.
"""

import os
import tempfile

import numpy as np

from dped_tf import fileio
from dped_tf import image_io
from dped_tf.enhancement.memory import OverBudget
from dped_tf.enhancement.storage import input_scale


def enhance_pixels(enhancer, pixels, out_dtype, settings):
  """An [H, W, 3] uint8/uint16 photo enhanced by `enhancer` (an `Enhancer`), whole or
  in tiles as `settings` (a `MemorySettings`) decide; [H, W, 3] of `out_dtype`."""
  height, width = pixels.shape[:2]
  channel_bytes = pixels.dtype.itemsize
  if settings.use_whole(height, width, channel_bytes):
    rgb = enhancer.whole(pixels[None].astype(np.float32) * input_scale(pixels.dtype))[0]
    return np.rint(np.clip(rgb, 0.0, 1.0) * np.iinfo(out_dtype).max).astype(out_dtype)
  out = np.empty((height, width, 3), out_dtype)
  return enhancer.tiled(pixels, out, settings.tile_side(),
                        settings.map_budget(height, width, channel_bytes),
                        settings.tmp_dir or tempfile.gettempdir())


def read_within_budget(path, settings, ext):
  """The photo at `path` (an `image_io.Photo`), refused before decoding (OverBudget
  naming `path`) when it does not fit `settings`' budget with its output written as
  `ext`."""
  def check(width, height, channel_bytes):
    try:
      settings.check_fits(width, height, channel_bytes, ext)
    except OverBudget as e:
      raise OverBudget(f"{path}: {e}", e.needed) from None

  return image_io.read_photo(path, check)


def enhance_file(path, target, enhancer, settings, quality):
  """One photo: read within `settings`' memory budget, enhance, write `target`
  atomically in its extension's format (`quality` for lossy ones); returns the
  (before, after) `image_io.Photo`s, the input's pixels released before encoding unless
  `settings.side_by_side`."""
  ext = os.path.splitext(target)[1]
  photo = read_within_budget(path, settings, ext)
  depth = image_io.output_depth(ext, photo.pixels.dtype)
  enhanced = enhance_pixels(enhancer, photo.pixels, depth, settings)
  if not settings.side_by_side:
    photo.pixels = None  # the memory budget counts the input as released while encoding
  after = image_io.Photo(enhanced, photo.alpha, photo.exif, photo.icc)
  fileio.atomic_write_bytes(target, image_io.encode_photo(ext, after, quality))
  return photo, after
