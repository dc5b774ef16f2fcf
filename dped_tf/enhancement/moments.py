"""Whole-image instance-norm statistics from tiles (docs/method.md §7): per-channel
count, mean and M2 of each tile's core, combined exactly in float64.

A core's moments are its window's (one pass of the fused batch-norm kernel over the
stage's output as it is) less those of the halo ring around it, a few pixels wide: no
copy of the core is made (its gain over slicing the core was within the noise of an A/B
at 0.8 MP on a loaded 2-core machine).
"""

import numpy as np
import tensorflow as tf

from dped_tf.modeling.layers import InstanceNorm


def tile_moments(window, core):
  """(window's, ring's) (count, mean, M2) per channel, in float32, of a [1, h, w, C]
  stage output; `core`: (top, left, height, width) inside the window. For a tile graph."""
  return InstanceNorm.partial_moments(window), ring_moments(window, core)


def ring_moments(x, core):
  """(count, mean, M2) per channel, in float32, of a [1, h, w, C] window outside its
  `core` (top, left, height, width): the halo ring."""
  top, left, height, width = core[0], core[1], core[2], core[3]
  strips = (x[0, :top], x[0, top + height:], x[0, top:top + height, :left],
            x[0, top:top + height, left + width:])
  ring = tf.cast(tf.concat([tf.reshape(s, [-1, x.shape[-1]]) for s in strips], 0), tf.float32)
  n = tf.cast(tf.shape(ring)[0], tf.float32)
  mean = tf.reduce_sum(ring, 0) / tf.maximum(n, 1.0)
  return n, mean, tf.reduce_sum(tf.square(ring - mean), 0)


class Moments:
  """Per-channel count, mean and M2 combined over parts in float64 (Chan et al.)."""

  def __init__(self):
    self.n, self.mean, self.m2 = 0.0, 0.0, 0.0

  def add(self, n, mean, m2):
    n = float(n)
    if n == 0:
      return
    mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
    total = self.n + n
    delta = mean - self.mean
    self.mean = self.mean + delta * (n / total)
    self.m2 = self.m2 + m2 + delta * delta * (self.n * n / total)
    self.n = total

  def remove(self, n, mean, m2):
    """Takes out a part already counted (the inverse of `add`)."""
    n = float(n)
    if n == 0:
      return
    mean, m2 = np.asarray(mean, np.float64), np.asarray(m2, np.float64)
    rest = self.n - n
    rest_mean = (self.n * self.mean - n * mean) / rest
    delta = mean - rest_mean
    self.m2 = self.m2 - m2 - delta * delta * (rest * n / self.n)
    self.mean, self.n = rest_mean, rest

  def add_core(self, window, ring):
    """A tile's core: its window's moments added, its ring's taken out."""
    self.add(*(np.asarray(v) for v in window))
    self.remove(*(np.asarray(v) for v in ring))

  def mean_variance(self):
    """(mean, variance) as float32 tensors: what a stage's norm is given."""
    return (tf.constant(self.mean, tf.float32), tf.constant(self.m2 / self.n, tf.float32))
