"""`dped-tf enhance INPUT... --model M --out DIR`: photos of any size, bounded memory."""

import os
import sys

from absl import flags

from dped_tf import fileio
from dped_tf import precision
from dped_tf.configs import RELEASED_HELP
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

np = lazy_import("numpy")
tf = lazy_import("tensorflow")
image_io = lazy_import("dped_tf.image_io")
executor = lazy_import("dped_tf.enhancement.executor")
memory = lazy_import("dped_tf.enhancement.memory")
photos = lazy_import("dped_tf.enhancement.photo")
storage = lazy_import("dped_tf.enhancement.storage")
factory = lazy_import("dped_tf.modeling.factory")

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
  define_inference_flags(fv)
  flags.mark_flag_as_required("model", flag_values=fv)
  flags.mark_flag_as_required("out", flag_values=fv)


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


def collect_inputs(args):
  """Files named and image files inside folders named, in order; (files, missing)."""
  files, missing = [], []
  for arg in args:
    if os.path.isdir(arg):
      for name in sorted(os.listdir(arg)):
        path = os.path.join(arg, name)
        if (not name.startswith(".") and os.path.isfile(path)
            and os.path.splitext(name)[1].lower() in image_io.INPUT_EXTENSIONS):
          files.append(path)
    elif os.path.exists(arg):
      files.append(arg)
    else:
      missing.append(f"{arg}: no such file or folder")
  return files, missing


def output_path(path, out_dir, ext):
  stem = os.path.splitext(os.path.basename(path))[0]
  return os.path.join(out_dir, stem + image_io.output_extension(path, ext))


def main(fv, argv):
  if not argv:
    raise DpedError("no input photos or folders given")
  if fv.ext and "." + fv.ext.lstrip(".").lower() not in image_io.OUTPUT_EXTENSIONS:
    raise DpedError(f"unsupported output format {fv.ext!r} (use "
                    f"{', '.join(image_io.OUTPUT_EXTENSIONS)})")
  files, failures = collect_inputs(argv)
  if not files and not failures:
    raise DpedError(f"no image files in {' '.join(argv)}")
  if os.path.exists(fv.out) and not os.path.isdir(fv.out):
    raise DpedError(f"{fv.out}: output path exists and is not a folder")
  enhancer, settings = load_enhancer(fv, keep_input=fv.side_by_side)
  os.makedirs(fv.out, exist_ok=True)
  for line in failures:
    print(f"dped-tf enhance: error: {line}", file=sys.stderr)
  planned, done = set(), 0
  for path in files:
    try:
      _enhance_one(path, enhancer, settings, planned, fv)
      done += 1
      continue
    except DpedError as e:
      why = with_flag_advice(e)
      why = why if why.startswith(path) else f"{path}: {why}"
    except (MemoryError, tf.errors.ResourceExhaustedError):
      why = f"{path}: out of memory (lower --max_memory or --tile)"
    failures.append(why)
    print(f"dped-tf enhance: error: {why}", file=sys.stderr)
  if failures:
    print(f"{done} enhanced, {len(failures)} failed:", file=sys.stderr)
    for line in failures:
      print(f"  {line}", file=sys.stderr)
    return 1
  print(f"{done} enhanced into {fv.out}")
  return 0


def load_enhancer(fv, keep_input=False):
  """(Enhancer, MemorySettings) from the flags of `define_inference_flags`; `keep_input`:
  the input's pixels stay in memory while the output is encoded (a comparison, a
  preview), which the memory budget then counts."""
  if fv.threads:
    tf.config.threading.set_intra_op_parallelism_threads(fv.threads)
  enhancer = executor.Enhancer(factory.load_generator(fv.model), fv.precision,
                               jit_compile=fv.xla)
  settings = memory.MemorySettings(enhancer.working_set, fv.max_memory * 2**20, fv.tile,
                                   fv.mode, fv.tmp_dir, side_by_side=keep_input)
  return enhancer, settings


def with_flag_advice(error):
  """A library error's line with the flag that fixes it: a photo over the memory budget
  names the --max_memory it needs, a temporary folder without room --tmp_dir."""
  if isinstance(error, memory.OverBudget):
    return f"{error}; raise --max_memory to {error.needed // 2**20} or more"
  if isinstance(error, storage.MapFolderFull):
    return f"{error} (choose another --tmp_dir)"
  return str(error)


def _enhance_one(path, enhancer, settings, planned, fv):
  target = output_path(path, fv.out, fv.ext)
  _check_target(path, target, planned, fv.overwrite)
  planned.add(os.path.abspath(target))
  before, after = photos.enhance_file(path, target, enhancer, settings, fv.quality)
  if fv.side_by_side:
    _write_comparison(path, target, before, after, fv)
  height, width = after.pixels.shape[:2]
  print(f"{path} -> {target} ({width}x{height}, {enhancer.precision})")


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
