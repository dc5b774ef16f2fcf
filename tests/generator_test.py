"""The generator against docs/method.md §1, with an independent tf.nn forward; its stages
against the receptive field of the layers they run (docs/method.md §7)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from dped_tf.modeling import tiling
from dped_tf.modeling.baselines import SRCNN
from dped_tf.modeling.generator import Generator
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.numpy_layers import np_instance_norm


def reference_forward(g, x):
  """docs/method.md §1 written with plain tf.nn ops on the raw arrays (not the Keras layers)."""
  convs = [c.get_weights() for c in g.conv_layers()]
  norms = [(n.scale.numpy(), n.shift.numpy()) for n in g.norm_layers()]

  def conv(x, k):
    w, b = convs[k]
    return tf.nn.conv2d(x, w, 1, "SAME").numpy() + b

  h = np.maximum(conv(x, 0), 0)
  for blk in range(4):
    y = np.maximum(np_instance_norm(conv(h, 1 + 2 * blk), *norms[2 * blk]), 0)
    y = np.maximum(np_instance_norm(conv(y, 2 + 2 * blk), *norms[2 * blk + 1]), 0)
    h = h + y
  h = np.maximum(conv(h, 9), 0)
  h = np.maximum(conv(h, 10), 0)
  return np.tanh(conv(h, 11)) * 0.58 + 0.5


def test_generator_parameter_count():
  g = Generator()
  g.build((None, None, None, 3))
  assert g.count_params() == 401_475
  assert len(g.conv_layers()) == 12 and len(g.norm_layers()) == 8


def test_generator_matches_independent_forward_on_odd_size():
  g = random_weights_model()
  g.conv12.kernel.assign(g.conv12.kernel * 0.4)  # the tanh mostly unsaturated
  x = np.random.default_rng(1).random((2, 37, 53, 3)).astype(np.float32)
  y = g(x).numpy()
  assert y.shape == x.shape and y.dtype == np.float32
  assert y.std() > 0.05 and np.mean(np.abs(y - 0.5) > 0.57) < 0.2  # not saturated
  np.testing.assert_allclose(y, reference_forward(g, x.astype(np.float64)), atol=2e-5)


def test_generator_output_range():
  g = random_weights_model(seed=2)
  for v in g.conv12.weights:
    v.assign(v * 50.0)  # saturate the tanh
  y = g(np.random.default_rng(3).random((1, 40, 40, 3)).astype(np.float32)).numpy()
  assert y.min() > 0.5 - 0.58 - 1e-6 and y.max() < 0.5 + 0.58 + 1e-6
  assert y.min() < 0.0 and y.max() > 1.0  # the scaled tanh does reach past [0, 1]


def test_generator_batch_norm_variant():
  g = Generator(norm="batch")
  g.build((None, None, None, 3))
  trainable = sum(int(np.prod(v.shape)) for v in g.trainable_variables)
  assert trainable == 401_475
  assert g(np.zeros((2, 9, 11, 3), np.float32), training=True).shape == (2, 9, 11, 3)


def test_reference_initialisation():
  g = Generator()
  g.build((None, None, None, 3))
  kernel = g.conv_layers()[1].kernel.numpy()
  assert abs(kernel.std() - 0.0088) < 0.001  # truncated normal, stddev 0.01 before cut
  assert np.abs(kernel).max() <= 0.02 + 1e-7
  np.testing.assert_allclose(g.conv1.bias.numpy(), 0.01)


def test_mixed_precision_output_is_float32():
  keras.mixed_precision.set_global_policy("mixed_bfloat16")
  g = Generator()
  y = g(np.random.default_rng(6).random((1, 16, 16, 3)).astype(np.float32))
  assert y.dtype == tf.float32
  assert g.conv1.compute_dtype == "bfloat16" and g.conv1.kernel.dtype == "float32"


def receptive_radius(stage, maps, stats):
  """How far from a changed input pixel the stage's outputs change (Chebyshev distance),
  measured by changing the centre pixel of each map it reads; also the output channels."""
  size = next(iter(maps.values())).shape[1]
  centre = size // 2
  base = stage.fn(maps, stats, False)
  radius = 0
  for name in stage.reads:
    bumped = maps[name].copy()
    bumped[:, centre, centre, :] += 10.0
    changed = stage.fn({**maps, name: bumped}, stats, False)
    for written, _ in stage.writes:
      diff = np.abs(changed[written].numpy() - base[written].numpy()).max(axis=(0, 3))
      ys, xs = np.nonzero(diff)
      radius = max(radius, int(np.max(np.maximum(np.abs(ys - centre), np.abs(xs - centre)))))
  return radius, {written: base[written].shape[-1] for written, _ in stage.writes}


def stage_inputs(stage, channels, size, rng):
  maps = {name: rng.normal(0.5, 1, (1, size, size, 3 if name == "image" else channels))
          .astype(np.float32) for name in stage.reads}
  stats = None
  if stage.norm is not None:
    stats = (np.zeros(channels, np.float32), np.ones(channels, np.float32))
  return maps, stats


@pytest.mark.parametrize("model, stages, expected", [
    (("dped", "instance"), "segments", [5, 1, 1, 1, 1, 1, 1, 1, 6]),
    (("dped", "instance"), "tiling_stages", [5, 1, 1, 1, 1, 1, 1, 1, 6]),
    (("dped", "batch"), "tiling_stages", [18]),
    (("srcnn", "instance"), "tiling_stages", [6]),
], ids=["dped_segments", "dped_instance", "dped_batch", "srcnn"])
def test_stage_halos_are_the_receptive_fields_of_their_convolutions(model, stages, expected):
  # expected: kernel radii summed by hand (conv1 9x9, block convs 3x3, conv10-11 3x3,
  # conv12 9x9; SRCNN 9, 1, 5); measured: how far one changed pixel reaches.
  g = random_weights_model(*model)
  rng = np.random.default_rng(11)
  halos = []
  for stage in getattr(g, stages)():
    maps, stats = stage_inputs(stage, 64, 2 * stage.halo + 5, rng)
    radius, channels = receptive_radius(stage, maps, stats)
    assert radius == stage.halo
    assert channels == dict(stage.writes)
    halos.append(stage.halo)
  assert halos == expected


def test_srcnn_9_5_5_halo():
  g = SRCNN(middle_kernel=5)
  g.build((None, None, None, 3))
  assert [s.halo for s in g.tiling_stages()] == [4 + 2 + 2]


@pytest.mark.parametrize("kernel, dilation, radius", [(3, 1, 1), (9, 1, 4), (4, 1, 2),
                                                      (3, 2, 2), (4, 2, 3), (1, 1, 0)])
def test_halo_of_one_convolution_is_its_reach(kernel, dilation, radius):
  conv = keras.layers.Conv2D(1, kernel, padding="same", dilation_rate=dilation,
                             kernel_initializer="ones")
  x = np.zeros((1, 15, 15, 1), np.float32)
  x[0, 7, 7, 0] = 1.0
  ys, xs = np.nonzero(conv(x).numpy()[0, :, :, 0])
  assert max(np.abs(ys - 7).max(), np.abs(xs - 7).max()) == radius
  assert tiling.halo(conv) == radius
  assert tiling.halo(conv, conv) == 2 * radius


def test_halo_refuses_strided_or_valid_convolutions():
  for conv in (keras.layers.Conv2D(1, 3, strides=2, padding="same"),
               keras.layers.Conv2D(1, 3, padding="valid")):
    with pytest.raises(ValueError, match="stride-1 SAME"):
      tiling.halo(conv)
