"""The per-photo use case (docs/method.md §7): read within the memory budget, enhance
whole or in tiles, encode, write atomically. The one path of `dped-tf enhance` (in one
process or as the Beam pipeline `dped_tf.pipelines.enhance_archive`), the enhance page
and the experiments; with the inputs it takes, the output each one gets, and the
`Enhancer` with its `MemorySettings` that all of them load.
"""

import os
import tempfile

import numpy as np
import tensorflow as tf

from dped_tf import fileio
from dped_tf import image_io
from dped_tf.enhancement import executor
from dped_tf.enhancement import memory
from dped_tf.enhancement.memory import OverBudget
from dped_tf.enhancement.storage import input_scale
from dped_tf.modeling import factory


def load_enhancer(model, precision="auto", max_memory=1536, tile=0, mode="auto",
                  tmp_dir=None, threads=0, xla=False, keep_input=False):
  """(Enhancer, MemorySettings) for the generator `.keras` file `model`: `max_memory` MB
  of budget, `threads` per operation (0: TensorFlow's default, all cores), `xla`:
  compiled graphs; `keep_input`: the input's pixels stay in memory while the output is
  encoded (a comparison, a preview), which the memory budget then counts."""
  if threads:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
  enhancer = executor.Enhancer(factory.load_generator(model), precision, jit_compile=xla)
  settings = memory.MemorySettings(enhancer.working_set, max_memory * 2**20, tile, mode,
                                   tmp_dir, side_by_side=keep_input)
  return enhancer, settings


def collect_inputs(args):
  """Files named and image files inside folders named, in order; (files, missing)."""
  files, missing = [], []
  for arg in args:
    if os.path.isdir(arg):
      for name in sorted(os.listdir(arg)):
        path = os.path.join(arg, name)
        if os.path.isfile(path) and is_photo_name(name):
          files.append(path)
    elif os.path.exists(arg):
      files.append(arg)
    else:
      missing.append(f"{arg}: no such file or folder")
  return files, missing


def is_photo_name(name):
  """Whether a file name found in a folder is taken as a photo: not hidden, and of an
  extension `image_io` reads."""
  return (not name.startswith(".")
          and os.path.splitext(name)[1].lower() in image_io.INPUT_EXTENSIONS)


def output_path(path, out_dir, ext, join=os.path.join):
  """The output of the photo at `path` in `out_dir`: its name with the extension of `ext`
  (None: the input's where it can be written); `join` joins folder and name (Beam's
  `FileSystems.join` for other file systems)."""
  stem = os.path.splitext(os.path.basename(path))[0]
  return join(out_dir, stem + image_io.output_extension(path, ext))


def enhance_pixels(enhancer, pixels, out_dtype, settings, progress=None):
  """An [H, W, 3] uint8/uint16 photo enhanced by `enhancer` (an `Enhancer`), whole or
  in tiles as `settings` (a `MemorySettings`) decide; [H, W, 3] of `out_dtype`.
  `progress`: a `dped_tf.progress.Progress`-like factory for the tiles, if tiled."""
  height, width = pixels.shape[:2]
  channel_bytes = pixels.dtype.itemsize
  if settings.use_whole(height, width, channel_bytes):
    rgb = enhancer.whole(pixels[None].astype(np.float32) * input_scale(pixels.dtype))[0]
    return np.rint(np.clip(rgb, 0.0, 1.0) * np.iinfo(out_dtype).max).astype(out_dtype)
  out = np.empty((height, width, 3), out_dtype)
  return enhancer.tiled(pixels, out, settings.tile_side(),
                        settings.map_budget(height, width, channel_bytes),
                        settings.tmp_dir or tempfile.gettempdir(), progress=progress)


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


def enhance_file(path, target, enhancer, settings, quality, progress=None):
  """One photo: read within `settings`' memory budget, enhance, write `target`
  atomically in its extension's format (`quality` for lossy ones); returns the
  (before, after) `image_io.Photo`s, the input's pixels released before encoding unless
  `settings.side_by_side`. `progress`: as for `enhance_pixels`."""
  ext = os.path.splitext(target)[1]
  photo = read_within_budget(path, settings, ext)
  depth = image_io.output_depth(ext, photo.pixels.dtype)
  enhanced = enhance_pixels(enhancer, photo.pixels, depth, settings, progress)
  if not settings.side_by_side:
    photo.pixels = None  # the memory budget counts the input as released while encoding
  after = image_io.Photo(enhanced, photo.alpha, photo.exif, photo.icc)
  fileio.atomic_write_bytes(target, image_io.encode_photo(ext, after, quality))
  return photo, after
