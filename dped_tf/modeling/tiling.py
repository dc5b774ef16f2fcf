"""What exact tiled inference needs from a model (docs/method.md §1, 7).

A model cuts its forward pass into `Stage`s, one cut before every normalisation that
needs statistics of the whole image (instance norm). A stage reads named maps (the photo
is "image"), keeps their spatial size (SAME convolutions) and writes named maps; the
last writes "rgb". Run on a tile window with `halo` pixels of context around the tile
(`halo(*convs)`: the reach of the convolutions it runs), the window's centre is exact.
Windows are clipped to the image, so that each convolution's SAME padding supplies the
zeros beyond the image edge exactly as it does for the whole image: a stage needs no
mask. The stage that starts with an instance norm takes that norm's per-channel (mean,
variance) over the whole image of the map `norm_input`, which the tiled executor
(dped_tf/enhancement/) measures while an earlier stage writes it.
The model's own `call` runs the same stages on the whole image, the norms measuring
their own statistics: one source for the generator's math.
"""

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class Stage:
  """fn(maps, stats, training) -> {name: map}; `writes`: ((name, channels), ...)."""
  fn: Callable
  reads: tuple
  writes: tuple
  halo: int
  norm: object = None  # the InstanceNorm this stage opens with, given whole-image stats
  norm_input: str = None  # the map those statistics are of


def halo(*convs):
  """The context a tile needs around it for `convs` run one after another: the sum of
  their radii, ceil(dilation * (kernel - 1) / 2) each (stride 1, SAME padding)."""
  total = 0
  for conv in convs:
    if tuple(conv.strides) != (1, 1) or conv.padding != "same":
      raise ValueError(f"{conv.name}: tiles need stride-1 SAME convolutions")
    total += max((d * (k - 1) + 1) // 2 for k, d in zip(conv.kernel_size, conv.dilation_rate))
  return total


def chain(first, second):
  """One stage running `first` then `second` (a cut that needs no statistics)."""
  if second.norm is not None:
    raise ValueError("a stage that needs whole-image statistics cannot be chained")

  def fn(maps, stats, training=False):
    maps = {**maps, **first.fn(maps, stats, training)}
    return {**maps, **second.fn(maps, None, training)}

  reads = first.reads + tuple(n for n in second.reads
                              if n not in first.reads and n not in dict(first.writes))
  writes = tuple(w for w in first.writes if w[0] not in dict(second.writes)) + second.writes
  return Stage(fn, reads, writes, first.halo + second.halo, first.norm, first.norm_input)


def cut_at_statistics(segments):
  """Segments joined wherever the next one needs no whole-image statistics."""
  stages = [segments[0]]
  for segment in segments[1:]:
    if segment.norm is None:
      stages[-1] = chain(stages[-1], segment)
    else:
      stages.append(segment)
  return stages


def run_whole(stages, images, training=False):
  """The stages over whole images: what the model's `call` computes."""
  maps = {"image": images}
  for stage in stages:
    maps.update(stage.fn(maps, None, training))
  return maps["rgb"]
