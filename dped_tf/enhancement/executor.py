"""`Enhancer`: a generator under one precision, run on the whole image or exactly in
tiles with bounded memory (docs/method.md §1, 7).

Whole-image inference is the Keras model itself, `model(x)`. Instance norm makes every
output pixel depend on whole-image statistics, so tiles cannot be enhanced
independently: the tiled executor runs the model's own `tiling_stages()`
(dped_tf/modeling/tiling.py) one after the other, each over every tile with its halo
(`tiles`). A stage that opens with an instance norm is given that norm's whole-image
statistics, which the stage before measured tile by tile (`moments`). Every convolution
is computed once, plus the halos; the result equals whole-image inference up to float
rounding. A model without instance norm (SRCNN, batch-norm DPED) is one stage: tiles
with halos alone. The maps between stages stay in RAM while they fit the memory budget
and go to unlinked temporary files otherwise (`storage`), so that the resident memory is
bounded by the tile size, not the photo size.
"""

import collections
import concurrent.futures
import contextlib
import time

import numpy as np
import tensorflow as tf

from dped_tf import precision as precisions
from dped_tf import progress as progress_lib
from dped_tf.enhancement import moments
from dped_tf.enhancement import storage
from dped_tf.enhancement.memory import WorkingSet
from dped_tf.enhancement.tiles import StagePlan
from dped_tf.enhancement.tiles import TilePlan
from dped_tf.enhancement.tiles import core_box


class PhaseTimes:
  """A profile of `Enhancer.tiled`, given as its `timer`: seconds per phase ("photo
  read", "map reads", "tile graphs", "moments", "output", and "map writes", which run in
  a writer thread beside the others when the maps are in files)."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)

  @contextlib.contextmanager
  def __call__(self, phase):
    start = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[phase] += time.perf_counter() - start


def _untimed(phase):  # pylint: disable=unused-argument
  return contextlib.nullcontext()


class Enhancer:
  """A generator (any model with `tiling_stages`) under one precision: `whole` runs
  `model(x)`, `tiled` the exact tiled executor over the same layers. `working_set`: the
  widest map (stage outputs and convolution kernels) and the widest stage halo, what
  the memory budget counts (`memory.MemorySettings`)."""

  def __init__(self, model, precision="float32", jit_compile=False):
    self.precision = precisions.resolve(precision)
    self.model = precisions.with_precision(model, self.precision)
    self.stages = self.model.tiling_stages()
    channels = [c for s in self.stages for _, c in s.writes]
    channels += [w.shape[-1] for w in self.model.weights if len(w.shape) == 4]
    self.working_set = WorkingSet(max(channels), max(s.halo for s in self.stages))
    self._whole = tf.function(lambda x: self.model(x, training=False),
                              jit_compile=jit_compile, reduce_retracing=True)
    self._plan = StagePlan(self.stages)
    self._tile_fns = [tf.function(self._tile_fn(i), jit_compile=jit_compile,
                                  reduce_retracing=True) for i in range(len(self.stages))]

  def whole(self, images):
    """[B, H, W, 3] float32 in [0, 1] -> enhanced float32 [B, H, W, 3]."""
    return self._whole(tf.convert_to_tensor(images, tf.float32)).numpy()

  def _tile_fn(self, index):
    """Stage `index` on one window: the whole output windows of the maps kept (bfloat16
    as its bits), and the window and ring moments of the maps a later norm needs."""
    stage = self.stages[index]
    keep, measure = self._plan.keep[index], self._plan.measure[index]

    def run(maps, stats, core):
      out = stage.fn(maps, stats, False)
      return ({n: storage.to_bits(out[n]) for n in keep},
              {n: moments.tile_moments(out[n], core) for n in measure})

    return run

  def tiled(self, image, out=None, tile=512, max_memory=None, tmp_dir=None, timer=None,
            progress=None):
    """Enhances one [H, W, 3] image (uint8, uint16 or float in [0, 1]) in tiles of
    `tile` x `tile` pixels. Writes into `out` ([H, W, 3], uint8, uint16 or float32;
    created as float32 if None) and returns it. The maps between stages are kept in
    RAM when they fit `max_memory` bytes (None: no limit), else in files in `tmp_dir`.
    `timer`: a `PhaseTimes` to profile the run; `progress`: a `dped_tf.progress.Progress`-
    like factory to show the tile passes done (every tile, once per stage)."""
    height, width = image.shape[:2]
    if out is None:
      out = np.empty((height, width, 3), np.float32)
    plan = TilePlan(height, width, tile)
    item = np.dtype(tf.as_dtype(self.model.compute_dtype).as_numpy_dtype).itemsize
    maps = height * width * self._plan.peak_channels * item
    on_disk = (max_memory is not None
               and maps > max_memory - self.working_set.tile_bytes(plan.th, plan.tw))
    files = storage.TileFiles(plan, tmp_dir) if on_disk else None
    with progress_lib.start(progress, len(self.stages) * plan.rows * plan.cols, "tile pass",
                            "enhance") as bar:
      self._run_stages(image, out, plan, files, timer or _untimed, bar)
    return out

  def _run_stages(self, image, out, plan, files, timer, bar):
    """Every stage over every tile. File writes go to a writer thread while the next
    tile computes, one tile's writes in flight at most, all done before the next stage
    reads (12 MP bfloat16 with maps in files: 47.7 -> 43.3 s; neutral at 1 MP)."""
    maps = {"image": storage.PhotoMap(image)}
    buffers = collections.defaultdict(storage.WindowBuffer)  # one per map name
    stats = {}
    peak = np.iinfo(out.dtype).max if out.dtype.kind == "u" else None
    dtype = tf.as_dtype(self.model.compute_dtype)
    writer = concurrent.futures.ThreadPoolExecutor(1, "dped-tiles-writer") if files else None
    pending, written = [], {}

    def store(target, core, view):
      with timer("map writes"):
        target.write(core, view)

    try:
      for index, stage in enumerate(self.stages):
        norm_stats = stats[stage.norm_input].mean_variance() if stage.norm is not None else None
        written = {}
        for name, channels in stage.writes:
          if name in self._plan.keep[index] and name != "rgb":
            written[name] = storage.TileMap(plan, channels, dtype, files)
        measured = {n: moments.Moments() for n in self._plan.measure[index]}
        for core in plan.tiles():
          window = plan.window(core, stage.halo)
          inputs = {}
          for name in stage.reads:
            with timer("photo read" if name == "image" else "map reads"):
              inputs[name] = maps[name].read(window, buffers[name])
          box = core_box(core, window)
          with timer("tile graphs"):
            kept, parts = self._tile_fns[index](inputs, norm_stats, tf.constant(box))
          for done in pending:  # at most one tile's writes in flight
            done.result()
          pending = []
          for name, tensor in kept.items():
            view = np.from_dlpack(tensor)[0, box[0]:box[0] + box[2], box[1]:box[1] + box[3]]
            if name == "rgb":
              with timer("output"):
                out[core[0]:core[2], core[1]:core[3]] = (
                    view if peak is None else np.rint(np.clip(view, 0.0, 1.0) * peak))
            elif writer:
              pending.append(writer.submit(store, written[name], core, view))
            else:
              store(written[name], core, view)
          with timer("moments"):
            for name, (window_part, ring_part) in parts.items():
              measured[name].add_core(window_part, ring_part)
          bar.update()
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
      for m in (*maps.values(), *written.values()):  # closing twice is harmless
        m.close()
