"""`dped-tf enhance ... --beam`: a photo archive enhanced by an Apache Beam pipeline
(docs/method.md §7; README "At scale").

Each worker loads the generator once (`DoFn.setup`; a model on another file system is
copied to the worker first) and runs every photo through
`enhancement.photo.enhance_file`, the per-photo function of `dped-tf enhance`, so a photo
comes out byte for byte as that command writes it, whole or in exact tiles within the
worker's memory budget. Inputs are file patterns of Beam's file systems (local paths
here; `gs://`, `s3://` and others on a cloud runner, staged through a local temporary
file). A photo whose output exists is skipped (a rerun does only what is left, unless
`overwrite`); a bad photo goes to the dead-letter output with its one-line reason
(`<out>/dead_letter.txt`) and the rest go on. Counters: photos, pixels, skipped,
refused (over the memory budget), failed.
"""

import dataclasses
import os
import shutil
import tempfile
import time

import apache_beam as beam
from apache_beam.io import fileio as beam_fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import
from dped_tf.pipelines import running

photo = lazy_import("dped_tf.enhancement.photo")
memory = lazy_import("dped_tf.enhancement.memory")
factory = lazy_import("dped_tf.modeling.factory")
tf = lazy_import("tensorflow")

DEAD_LETTER = "dead_letter.txt"
COUNTERS = ("photos", "pixels", "skipped", "refused", "failed")


@dataclasses.dataclass
class ArchiveRun:
  """What a run did: its `counters` (COUNTERS), the dead letters ("path: reason"), the
  dead-letter file and the seconds the pipeline took."""
  counters: dict
  dead_letters: list
  dead_letter_path: str
  seconds: float


def is_local(path):
  return FileSystems.get_scheme(path) in (None, "file")


def input_patterns(inputs):
  """Beam file patterns for `dped-tf enhance`'s inputs (a local folder: its files), and
  the dead letters of local inputs that do not exist."""
  patterns, missing = [], []
  for arg in inputs:
    if is_local(arg) and os.path.isdir(arg):
      patterns.append(os.path.join(arg, "*"))
    elif is_local(arg) and not os.path.exists(arg) and not any(c in arg for c in "*?["):
      missing.append(f"{arg}: no such file or folder")
    else:
      patterns.append(arg)
  return patterns, missing


def _copy(source, local_path):
  """Copies a file of any of Beam's file systems to a local path."""
  with FileSystems.open(source, compression_type=CompressionTypes.UNCOMPRESSED) as f, \
      open(local_path, "wb") as g:
    shutil.copyfileobj(f, g)


class EnhancePhotos(beam.DoFn):
  """(target, [input paths]) -> the enhanced target's (path, target, pixels); dead
  letters ("path: reason") on the `dead_letter` output. `inference`: the keyword
  arguments of `enhancement.photo.load_enhancer`; `explain(error)`: the line of a
  library error (the command adds the flag that fixes it)."""

  def __init__(self, inference, quality, overwrite, explain=str):
    self._inference = inference
    self._quality = quality
    self._overwrite = overwrite
    self._explain = explain
    self._counters = {name: running.counter(name) for name in COUNTERS}

  def setup(self):
    inference = dict(self._inference)
    if not is_local(inference["model"]):  # Keras loads a local file
      self._model_dir = tempfile.TemporaryDirectory()
      inference["model"] = os.path.join(self._model_dir.name,
                                        os.path.basename(self._inference["model"]))
      _copy(self._inference["model"], inference["model"])
    self._enhancer, self._settings = photo.load_enhancer(**inference)

  def process(self, element):
    target, paths = element
    path, *others = sorted(paths)
    for other in others:
      yield self._dead_letter("failed", f"{other}: another input of this run already "
                                        f"writes {target}")
    if os.path.abspath(path) == os.path.abspath(target) and is_local(path):
      yield self._dead_letter("failed", f"{path}: the output {target} would overwrite "
                                        "the input")
      return
    if not self._overwrite and FileSystems.exists(target):
      self._counters["skipped"].inc()
      return
    try:
      width, height = self._enhance(path, target)
    except DpedError as e:
      why = self._explain(e)
      kind = "refused" if isinstance(e, memory.OverBudget) else "failed"
      yield self._dead_letter(kind, why if why.startswith(path) else f"{path}: {why}")
      return
    except (MemoryError, tf.errors.ResourceExhaustedError):
      yield self._dead_letter("failed", f"{path}: out of memory (lower the memory budget "
                                        "or the tile side)")
      return
    self._counters["photos"].inc()
    self._counters["pixels"].inc(width * height)
    yield path, target, width * height

  def _enhance(self, path, target):
    """Enhances one photo (through a local temporary copy where a file system is not
    local); returns its (width, height)."""
    if is_local(path) and is_local(target):
      _, after = photo.enhance_file(path, target, self._enhancer, self._settings,
                                    self._quality)
    else:
      with tempfile.TemporaryDirectory() as tmp:
        local_in = os.path.join(tmp, "in", os.path.basename(path))
        local_out = os.path.join(tmp, "out", os.path.basename(target))
        os.makedirs(os.path.dirname(local_in))
        os.makedirs(os.path.dirname(local_out))
        _copy(path, local_in)
        try:
          _, after = photo.enhance_file(local_in, local_out, self._enhancer,
                                        self._settings, self._quality)
        except DpedError as e:
          raise type(e)(*[str(a).replace(local_in, path) for a in e.args]) from None
        # Object stores publish an object when it is closed: atomic as a rename.
        with open(local_out, "rb") as f, FileSystems.create(
            target, compression_type=CompressionTypes.UNCOMPRESSED) as g:
          shutil.copyfileobj(f, g)
    height, width = after.pixels.shape[:2]
    return width, height

  def _dead_letter(self, kind, line):
    self._counters[kind].inc()
    return beam.pvalue.TaggedOutput("dead_letter", line)


def _photo_path(metadata):
  if photo.is_photo_name(os.path.basename(metadata.path)):
    yield metadata.path


def _by_target(path, out_dir, ext):
  return photo.output_path(path, out_dir, ext, FileSystems.join), path


def build(pipeline, patterns, out_dir, inference, ext=None, quality=95, overwrite=False,
          explain=str, dead_letters=()):
  """Adds the enhancement of every photo matched by `patterns` into `out_dir` to
  `pipeline`; the dead letters (with the extra lines `dead_letters`) go to
  `<out_dir>/dead_letter.txt`. Returns the PCollection of (path, target, pixels)."""
  join = FileSystems.join
  photos = (pipeline
            | "Patterns" >> beam.Create(patterns)
            | "Match" >> beam_fileio.MatchAll()
            | "Photos" >> beam.FlatMap(_photo_path)
            | "ByTarget" >> beam.Map(_by_target, out_dir, ext)
            | "OnePerTarget" >> beam.GroupByKey()
            | "Enhance" >> beam.ParDo(EnhancePhotos(inference, quality, overwrite, explain)
                                      ).with_outputs("dead_letter", main="enhanced"))
  extra = pipeline | "Missing" >> beam.Create(list(dead_letters))
  _ = ((photos.dead_letter, extra) | "DeadLetters" >> beam.Flatten()
       | "WriteDeadLetters" >> beam.io.WriteToText(join(out_dir, DEAD_LETTER), num_shards=1,
                                                   shard_name_template=""))
  return photos.enhanced


def run(inputs, out_dir, inference, ext=None, quality=95, overwrite=False, beam_args=(),
        explain=str):
  """Enhances every photo of `inputs` (photos, folders, Beam file patterns) into
  `out_dir` with a Beam pipeline (`running.pipeline_options(beam_args)`); `inference`:
  the keyword arguments of `enhancement.photo.load_enhancer`. Returns an ArchiveRun."""
  if is_local(inference["model"]):
    factory.load_generator(inference["model"])  # a bad model: one line, before any worker
  elif not FileSystems.exists(inference["model"]):
    raise DpedError(f"{inference['model']}: model file not found")
  patterns, missing = input_patterns(inputs)
  if is_local(out_dir):
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
      raise DpedError(f"{out_dir}: output path exists and is not a folder")
    os.makedirs(out_dir, exist_ok=True)
  start = time.perf_counter()
  pipeline = beam.Pipeline(options=running.pipeline_options(beam_args))
  build(pipeline, patterns, out_dir, inference, ext, quality, overwrite, explain, missing)
  result = running.run(pipeline)
  seconds = time.perf_counter() - start
  path = FileSystems.join(out_dir, DEAD_LETTER)
  with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
    lines = sorted(line for line in f.read().decode().splitlines() if line)
  counts = {name: 0 for name in COUNTERS}
  counts.update(running.counters(result))
  counts["failed"] += len(missing)
  return ArchiveRun(counts, lines, path, seconds)
