"""Whole-image and exact tiled inference (docs/method.md §1, 7): equal to the Keras
generator."""

import os

import numpy as np
import pytest

from dped_tf.enhancement.executor import Enhancer
from dped_tf.enhancement.executor import PhaseTimes
from dped_tf.enhancement.memory import MemorySettings
from dped_tf.enhancement.memory import WorkingSet
from dped_tf.enhancement.moments import Moments
from dped_tf.enhancement.photo import enhance_pixels
from dped_tf.enhancement.storage import MapFolderFull
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.photos import smooth_photo


@pytest.fixture(scope="module")
def model():
  return random_weights_model()


def photo(height, width, seed=1):
  """A smooth photo with fine noise, float32 in [0, 1]."""
  return smooth_photo(height, width, seed) / np.float32(255)


def test_whole_image_matches_the_keras_generator(model):
  image = photo(33, 47)
  expected = model(image[None]).numpy()
  enhancer = Enhancer(model)
  got = enhancer.whole(image[None])
  assert expected.std() > 0.05  # the output depends on the input
  np.testing.assert_allclose(got, expected, atol=1e-6)
  assert len(enhancer.stages) == 9  # cut before each of the 8 instance norms


@pytest.mark.parametrize("kind, norm, working_set", [
    ("dped", "instance", WorkingSet(64, 6)),  # the tail: conv10 1 + conv11 1 + conv12 4
    ("srcnn", None, WorkingSet(64, 6)),  # conv1 4 + conv2 0 + conv3 2
    ("dped", "batch", WorkingSet(64, 18))])  # one stage: 4 + 7 * 1 + 6 + 1
def test_working_set_comes_from_the_model(kind, norm, working_set):
  assert Enhancer(random_weights_model(kind, norm)).working_set == working_set


@pytest.mark.parametrize("tile,on_disk", [(5, False), (7, True), (64, False)])
def test_tiled_equals_whole_image(model, tmp_path, tile, on_disk):
  """Tiles far smaller than the receptive field (many tiles, halos crossing several
  tiles and the border) still give the whole-image result: the statistics are exact."""
  image = photo(29, 41)
  expected = model(image[None]).numpy()[0]
  enhancer = Enhancer(model)
  open_files = len(os.listdir("/proc/self/fd"))
  got = enhancer.tiled(image, tile=tile, max_memory=1 if on_disk else None,
                       tmp_dir=str(tmp_path))
  assert np.abs(got - expected).max() <= 3e-5
  assert not list(tmp_path.iterdir())  # temporary files are unlinked
  assert len(os.listdir("/proc/self/fd")) == open_files  # and closed


def test_a_folder_without_room_for_the_maps_is_named(model, tmp_path):
  missing = str(tmp_path / "missing")
  with pytest.raises(MapFolderFull, match=f"^{missing}: cannot create a temporary tile "
                     r"file \(No such file or directory\); each map of a 41x29 photo "
                     r"takes 0.0 GB there$") as e:
    Enhancer(model).tiled(photo(29, 41), tile=7, max_memory=1, tmp_dir=missing)
  assert e.value.folder == missing


def test_moments_combine_and_take_out_parts_exactly():
  """Per-channel count, mean and M2 combined over parts and a part taken back out
  (a window less its halo ring) equal numpy's over the remaining values."""
  rng = np.random.default_rng(0)
  parts = [rng.normal(3.0, 0.5, (n, 4)) for n in (50, 7, 300)]

  def moments_of(x):
    return len(x), x.mean(0), ((x - x.mean(0)) ** 2).sum(0)

  total = Moments()
  for part in parts:
    total.add(*moments_of(part))
  total.remove(*moments_of(parts[1]))
  rest = np.concatenate([parts[0], parts[2]])
  assert total.n == len(rest)
  np.testing.assert_allclose(total.mean, rest.mean(0), rtol=1e-12)
  np.testing.assert_allclose(total.m2, ((rest - rest.mean(0)) ** 2).sum(0), rtol=1e-10)


def test_naive_tiling_would_differ(model):
  """Control: enhancing tiles independently changes the result (why stats are global)."""
  image = photo(32, 32)
  enhancer = Enhancer(model)
  whole = enhancer.whole(image[None])[0]
  halves = np.concatenate([enhancer.whole(image[None, :, :16])[0],
                           enhancer.whole(image[None, :, 16:])[0]], axis=1)
  assert np.abs(halves - whole).max() > 0.01


@pytest.mark.parametrize("kind, norm", [("dped", "batch"), ("srcnn", None)])
def test_models_without_instance_norm_tile_with_halos_alone(kind, norm, tmp_path):
  """One stage; tiles far smaller than the receptive field, in RAM and on disk."""
  model = random_weights_model(kind, norm, seed=3)
  image = photo(21, 18)
  expected = model(image[None], training=False).numpy()[0]
  assert expected.std() > 0.05
  enhancer = Enhancer(model)
  assert len(enhancer.stages) == 1
  for max_memory in (None, 1):
    got = enhancer.tiled(image, tile=6, max_memory=max_memory, tmp_dir=str(tmp_path))
    assert np.abs(got - expected).max() <= 3e-5
  # control: the same tiles without their halos differ
  halves = np.concatenate([model(image[None, :, :9]).numpy()[0],
                           model(image[None, :, 9:]).numpy()[0]], axis=1)
  assert np.abs(halves - expected).max() > 0.01


def test_bfloat16_tiled_equals_bfloat16_whole(model):
  image = photo(24, 30)
  enhancer = Enhancer(model, "bfloat16")
  whole = enhancer.whole(image[None])[0]
  tiled = enhancer.tiled(image, tile=8)
  mse = np.mean((tiled - whole).astype(np.float64) ** 2)
  assert 10 * np.log10(1 / mse) >= 40  # bfloat16 rounding differs with tile shapes


@pytest.mark.parametrize("on_disk", [False, True])
def test_profile_times_every_phase_and_changes_nothing(model, tmp_path, on_disk):
  """`PhaseTimes` as the executor's timer: every phase counted, within the run's time,
  the result bit-identical."""
  image = photo(30, 40)
  enhancer = Enhancer(model)
  kwargs = {"tile": 16, "max_memory": 1 if on_disk else None, "tmp_dir": str(tmp_path)}
  plain = enhancer.tiled(image, **kwargs)
  timer = PhaseTimes()
  profiled = enhancer.tiled(image, timer=timer, **kwargs)
  np.testing.assert_array_equal(profiled, plain)
  assert set(timer.seconds) == {"photo read", "map reads", "map writes", "tile graphs",
                                "moments", "output"}
  assert all(s > 0 for s in timer.seconds.values())


def test_tiled_memory_stays_bounded(model, tmp_path):
  """1 MP in bfloat16 with a 64 MB budget: the peak RSS grows far less than the 4
  full-size maps (2 x 128 MB bfloat16, 2 x 256 MB float32) that staging in RAM holds."""
  image = smooth_photo(1024, 1024)
  enhancer = Enhancer(model, "bfloat16")
  settings = MemorySettings(enhancer.working_set, budget=64 * 2**20, tmp_dir=str(tmp_path))
  enhance_pixels(enhancer, image[:64, :64], np.uint8, settings)  # trace the graphs
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM
  before = _rss_mb("VmRSS")
  enhance_pixels(enhancer, image, np.uint8, settings)
  assert _rss_mb("VmHWM") - before < 250


def _rss_mb(field):
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) / 1024
  raise AssertionError(field)
