"""`dped-tf enhance INPUT... --model M --out DIR`: photos of any size, bounded memory."""

import contextlib
import os
import sys
import time

from absl import flags

from dped_tf import fileio
from dped_tf import precision
from dped_tf.configs import RELEASED_HELP
from dped_tf.configs import check_model
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.progress import Progress
from dped_tf.progress import duration

np = lazy_import("numpy")
tf = lazy_import("tensorflow")
image_io = lazy_import("dped_tf.image_io")
memory = lazy_import("dped_tf.enhancement.memory")
photos = lazy_import("dped_tf.enhancement.photo")
storage = lazy_import("dped_tf.enhancement.storage")
pipelines = lazy_import("dped_tf.pipelines")
enhance_archive = lazy_import("dped_tf.pipelines.enhance_archive")

USAGE = "PHOTO_OR_FOLDER... --model MODEL --out FOLDER"
EXAMPLE = "dped-tf enhance photo.jpg holiday/ --model dped:sony --out enhanced"
REQUIRED = ("model", "out")

MODES = ("auto", "whole", "tiled")


def define_flags(fv):
  flags.DEFINE_string("model", None, "Generator: a .keras file (dped with instance or batch "
                      "norm, johnson, srcnn: what train and import-checkpoint write) "
                      f"{RELEASED_HELP}.", flag_values=fv)
  flags.DEFINE_string("out", None, "Output folder (created if missing).", flag_values=fv)
  flags.DEFINE_string("ext", None, "Output format by extension (jpg, png, tif, webp, bmp, "
                      "heic, heif, avif); default: the input's where it can be written, "
                      "else jpg.", flag_values=fv)
  flags.DEFINE_bool("overwrite", False, "Replace existing outputs (never an input).",
                    flag_values=fv)
  flags.DEFINE_bool("side_by_side", False, "Also write <name>_compare.<ext>: before | after.",
                    flag_values=fv)
  flags.DEFINE_bool("beam", False, "Run as an Apache Beam pipeline (the beam extra): "
                    "INPUTs may be Beam file patterns (gs://...); a rerun skips photos "
                    "already enhanced; bad photos go to <out>/dead_letter.txt. DirectRunner "
                    "with one worker per core unless Beam options after -- say otherwise "
                    "(-- --runner=... --direct_num_workers=N).", flag_values=fv)
  define_inference_flags(fv)


def define_inference_flags(fv):
  """The flags of the per-photo path, shared with `dped-tf serve`."""
  flags.DEFINE_enum("precision", "auto", list(precision.CHOICES),
                    "Compute precision; auto: float16 on GPU, bfloat16 on CPUs with "
                    "AMX/AVX512-BF16, else float32.", flag_values=fv)
  flags.DEFINE_enum("mode", "auto", MODES, "whole-image inference, exact tiled inference, "
                    "or auto (whole when it fits --max_memory).", flag_values=fv)
  flags.DEFINE_integer("max_memory", 1536, "Memory budget in MB for images and activations "
                       "(TensorFlow's own ~0.5 GB comes on top).", lower_bound=64,
                       flag_values=fv)
  flags.DEFINE_integer("tile", 0, "Tile side in pixels (0: from --max_memory).", lower_bound=0,
                       flag_values=fv)
  flags.DEFINE_string("tmp_dir", None, "Folder for activations that exceed the budget "
                      "(default: the system's temporary folder).", flag_values=fv)
  flags.DEFINE_integer("threads", 0, "CPU threads per operation (0: all cores).",
                       lower_bound=0, flag_values=fv)
  flags.DEFINE_bool("xla", False, "Compile the graphs with XLA.", flag_values=fv)
  flags.DEFINE_integer("quality", 95, "JPEG/WebP/HEIF/AVIF quality.", lower_bound=1,
                       upper_bound=100,
                       flag_values=fv)


def check(fv, argv):
  """Inputs, model and output, before TensorFlow loads: a mistyped name fails at once."""
  inputs = [a for a in argv if not (fv.beam and a.startswith("--"))]
  if not inputs:
    raise DpedError("no input photos or folders given")
  if fv.ext and "." + fv.ext.lstrip(".").lower() not in image_io.OUTPUT_EXTENSIONS:
    raise DpedError(f"unsupported output format {fv.ext!r} (use "
                    f"{', '.join(image_io.OUTPUT_EXTENSIONS)})")
  missing = [a for a in inputs if not os.path.exists(a)]
  if not fv.beam and len(missing) == len(inputs):
    raise DpedError(f"{missing[0]}: no such file or folder" if len(missing) == 1 else
                    f"none of the inputs exists ({', '.join(missing)})")
  if not fv.beam:
    check_model(fv.model)
  if os.path.exists(fv.out) and not os.path.isdir(fv.out):
    raise DpedError(f"{fv.out}: output path exists and is not a folder")


def main(fv, argv):
  started = time.monotonic()
  if fv.beam:
    return _main_beam(fv, argv)
  files, failures = photos.collect_inputs(argv)
  if not files and not failures:
    raise DpedError(f"no image files in {' '.join(argv)}")
  enhancer, settings = load_enhancer(fv, keep_input=fv.side_by_side)
  made_out = not os.path.exists(fv.out)
  os.makedirs(fv.out, exist_ok=True)
  for line in failures:
    print(f"dped-tf enhance: error: {line}", file=sys.stderr)
  planned, done = set(), 0
  # Several photos: one line of photos, a tiled one's passes as parts of its photo; one
  # photo: a line of its tile passes, if tiled.
  bar = Progress(len(files), unit="photo", label="enhance") if len(files) > 1 else None
  say = bar.write if bar else print
  with bar or contextlib.nullcontext():
    for path in files:
      part = bar.share() if bar else Progress
      try:
        _enhance_one(path, enhancer, settings, planned, fv, part, say)
        done += 1
        continue
      except DpedError as e:
        why = with_flag_advice(e)
        why = why if why.startswith(path) else f"{path}: {why}"
      except (MemoryError, tf.errors.ResourceExhaustedError):
        why = f"{path}: out of memory (lower --max_memory or --tile)"
      finally:
        if bar:
          part.finish()
      failures.append(why)
      say(f"dped-tf enhance: error: {why}", file=sys.stderr)
  if failures:
    if made_out and not os.listdir(fv.out):
      os.rmdir(fv.out)  # nothing written: leave no empty folder behind
    if len(failures) > 1 or done:  # one failure alone was said once, above
      print(f"{done} enhanced, {len(failures)} failed:", file=sys.stderr)
      for line in failures:
        print(f"  {line}", file=sys.stderr)
    return 1
  print(f"{done} enhanced into {fv.out} in {duration(time.monotonic() - started)}")
  return 0


def _main_beam(fv, argv):
  """`--beam`: the photos through `dped_tf.pipelines.enhance_archive`; the arguments
  that start with -- are Beam's options."""
  pipelines.require_beam()
  if fv.side_by_side:
    raise DpedError("--side_by_side is not written with --beam")
  inputs = [a for a in argv if not a.startswith("--")]
  if not inputs:
    raise DpedError("no input photos or folders given")
  done = enhance_archive.run(inputs, fv.out, inference_options(fv), fv.ext, fv.quality,
                             fv.overwrite, [a for a in argv if a.startswith("--")],
                             explain=with_flag_advice)
  c = done.counters
  print(f"{c['photos']} enhanced ({c['pixels'] / 1e6:.1f} MP) into {fv.out} in "
        f"{done.seconds:.1f} s; {c['skipped']} already done, {c['refused']} refused, "
        f"{c['failed']} failed")
  if not done.dead_letters:
    return 0
  print(f"dead letters ({done.dead_letter_path}):", file=sys.stderr)
  for line in done.dead_letters:
    print(f"  {line}", file=sys.stderr)
  return 1


def load_enhancer(fv, keep_input=False):
  """(Enhancer, MemorySettings) from the flags of `define_inference_flags`."""
  return photos.load_enhancer(**inference_options(fv), keep_input=keep_input)


def inference_options(fv):
  """The keyword arguments of `enhancement.photo.load_enhancer` that the flags set."""
  return dict(model=fv.model, precision=fv.precision, max_memory=fv.max_memory,
              tile=fv.tile, mode=fv.mode, tmp_dir=fv.tmp_dir, threads=fv.threads,
              xla=fv.xla)


def with_flag_advice(error):
  """A library error's line with the flag that fixes it: a photo over the memory budget
  names the --max_memory it needs, a temporary folder without room --tmp_dir."""
  if isinstance(error, memory.OverBudget):
    return f"{error}; raise --max_memory to {error.needed // 2**20} or more"
  if isinstance(error, storage.MapFolderFull):
    return f"{error} (choose another --tmp_dir)"
  return str(error)


def _enhance_one(path, enhancer, settings, planned, fv, progress=None, say=print):
  target = photos.output_path(path, fv.out, fv.ext)
  _check_target(path, target, planned, fv.overwrite)
  planned.add(os.path.abspath(target))
  before, after = photos.enhance_file(path, target, enhancer, settings, fv.quality, progress)
  if fv.side_by_side:
    _write_comparison(path, target, before, after, fv)
  height, width = after.pixels.shape[:2]
  say(f"{path} -> {target} ({width}x{height}, {enhancer.precision})")


def _check_target(path, target, planned, overwrite):
  if os.path.exists(target) and os.path.samefile(path, target):
    raise DpedError(f"{path}: the output {target} would overwrite the input")
  if os.path.abspath(target) in planned:
    raise DpedError(f"{path}: another input of this run already writes {target}")
  if os.path.exists(target) and not overwrite:
    raise DpedError(f"{path}: {target} exists (pass --overwrite to replace it)")


def _write_comparison(path, target, before, after, fv):
  """before | after, side by side, at the output's bit depth."""
  stem, ext = os.path.splitext(target)
  compare = f"{stem}_compare{ext}"
  _check_target(path, compare, set(), fv.overwrite)
  pixels = np.concatenate([image_io.to_depth(before.pixels, after.pixels.dtype),
                           after.pixels], axis=1)
  fileio.atomic_write_bytes(compare, image_io.encode_photo(
      ext, image_io.Photo(pixels, None, after.exif, after.icc), fv.quality))
