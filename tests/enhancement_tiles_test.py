"""Tile and stage planning of exact tiled inference (docs/method.md §7), against brute
force over pixels and against stage lists worked by hand."""

import os
import subprocess
import sys

import numpy as np
import pytest

from dped_tf.enhancement.tiles import StagePlan
from dped_tf.enhancement.tiles import TilePlan
from dped_tf.enhancement.tiles import core_box
from dped_tf.errors import DpedError
from dped_tf.modeling.tiling import Stage

SHAPES = [(29, 41, 5), (29, 41, 64), (1, 1, 3), (7, 5, 7), (500, 480, 64), (100, 37, 13)]


@pytest.mark.parametrize("height, width, tile", SHAPES)
def test_cores_cover_every_pixel_exactly_once(height, width, tile):
  plan = TilePlan(height, width, tile)
  count = np.zeros((height, width), int)
  cores = list(plan.tiles())
  for y0, x0, y1, x1 in cores:
    assert 0 < y1 - y0 <= min(tile, plan.th) and 0 < x1 - x0 <= min(tile, plan.tw)
    count[y0:y1, x0:x1] += 1
  assert (count == 1).all()
  assert len(cores) == plan.rows * plan.cols
  # equal tiles as far as the size allows: the grid of `tile` with its rows and columns
  assert plan.rows == -(-height // tile) and plan.cols == -(-width // tile)
  assert sorted(plan.index(c) for c in cores) == list(range(len(cores)))


def test_windows_grow_by_the_halo_and_clip_at_the_edges():
  plan = TilePlan(30, 40, 10)
  assert plan.window((0, 0, 10, 10), 3) == (0, 0, 13, 13)
  assert plan.window((10, 10, 20, 20), 3) == (7, 7, 23, 23)
  assert plan.window((20, 30, 30, 40), 3) == (17, 27, 30, 40)
  assert plan.window((10, 10, 20, 20), 50) == (0, 0, 30, 40)
  assert core_box((10, 10, 20, 20), (7, 7, 23, 23)) == (3, 3, 10, 10)
  assert core_box((0, 30, 10, 40), plan.window((0, 30, 10, 40), 3)) == (0, 3, 10, 10)


@pytest.mark.parametrize("height, width, tile", SHAPES)
def test_cores_in_a_window_are_the_cores_it_overlaps(height, width, tile):
  plan = TilePlan(height, width, tile)
  cores = list(plan.tiles())
  rng = np.random.default_rng(0)
  for _ in range(50):
    y0, y1 = sorted(rng.integers(0, height + 1, 2))
    x0, x1 = sorted(rng.integers(0, width + 1, 2))
    if y0 == y1 or x0 == x1:
      continue
    expected = [c for c in cores if c[0] < y1 and y0 < c[2] and c[1] < x1 and x0 < c[3]]
    assert sorted(plan.cores_in((y0, x0, y1, x1))) == sorted(expected)


def test_tile_side_must_be_positive():
  with pytest.raises(DpedError, match="tile size must be positive"):
    TilePlan(10, 10, 0)


def stage(reads, writes, norm_input=None, halo=1):
  return Stage(None, tuple(reads), tuple(writes), halo,
               norm=None if norm_input is None else object(), norm_input=norm_input)


def test_stage_plan_of_a_chain_with_a_skip_connection():
  """image -> a (64) -> b (32, norm on a) -> rgb (reads a and b, norm on b): `a` is kept
  for the last stage, measured for the second; `b` measured for the last; both released
  by the last; at most a, b alive (96), and a rewritten map counted twice."""
  plan = StagePlan([stage(["image"], [("a", 64)]),
                    stage(["a"], [("b", 32)], "a"),
                    stage(["a", "b"], [("rgb", 3)], "b")])
  assert plan.keep == [["a"], ["b"], ["rgb"]]
  assert plan.measure == [["a"], ["b"], []]
  assert plan.release == [[], [], ["a", "b"]]
  assert plan.peak_channels == 96
  rewrite = StagePlan([stage(["image"], [("a", 16)]), stage(["a"], [("a", 16)], "a"),
                       stage(["a"], [("rgb", 3)], "a")])
  assert rewrite.keep == [["a"], ["a"], ["rgb"]]
  assert rewrite.measure == [["a"], ["a"], []]
  assert rewrite.peak_channels == 32  # the old and the new `a` while stage 1 runs


def test_stage_plan_needs_the_normalised_map_written_earlier():
  with pytest.raises(ValueError, match="no earlier stage writes 'z'"):
    StagePlan([stage(["image"], [("a", 8)]), stage(["a"], [("rgb", 3)], "z")])


def test_stage_plan_of_the_dped_generator():
  """9 stages: `skip` and `pre` kept until the tail, which releases them; `pre`
  measured by every stage for the next norm; at most 4 maps of 64 channels (the old
  and new `skip` and `pre` of a block's end)."""
  from dped_tf.testing.models import random_weights_model  # pylint: disable=import-outside-toplevel
  stages = random_weights_model().tiling_stages()
  plan = StagePlan(stages)
  assert len(stages) == 9
  assert [sorted(k) for k in plan.keep] == [["pre", "skip"]] + [
      ["pre"] if i % 2 else ["pre", "skip"] for i in range(1, 8)] + [["rgb"]]
  assert plan.measure == [["pre"]] * 8 + [[]]
  assert plan.release == [[]] * 8 + [["pre", "skip"]]
  assert plan.peak_channels == 4 * 64
  assert [s.halo for s in stages] == [5] + [1] * 7 + [6]


def test_tiles_and_memory_import_no_tensorflow():
  code = ("import sys, dped_tf.enhancement.tiles, dped_tf.enhancement.memory; "
          "sys.exit('tensorflow' in sys.modules)")
  assert subprocess.run([sys.executable, "-c", code], env=os.environ, check=False,
                        timeout=60).returncode == 0
