"""The four DPED losses (paper Sec. 3; docs/method.md §3), in float32 whatever the policy.

All images are NHWC in [0, 1]. Reductions follow the released code exactly: the
color loss and the adversarial cross-entropy are sums, the others are means.
"""

import functools
import math

import numpy as np
import tensorflow as tf


@functools.lru_cache(maxsize=None)
def gaussian_kernel(size=21, nsig=3.0):
  """The color loss' blur kernel (docs/method.md §3): sqrt of the outer product of a sampled
  normal density, normalised to sum 1. Built once per (size, nsig); read-only."""
  interval = (2 * nsig + 1.0) / size
  x = np.linspace(-nsig - interval / 2.0, nsig + interval / 2.0, size + 1)
  cdf = 0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
  k1 = np.diff(cdf)
  k2 = np.sqrt(np.outer(k1, k1))
  kernel = (k2 / k2.sum()).astype(np.float32)
  kernel.setflags(write=False)
  return kernel


def gaussian_blur(images, size=21, nsig=3.0):
  """Per-channel (depthwise) blur with `gaussian_kernel`, SAME zero padding."""
  images = tf.cast(images, tf.float32)
  channels = images.shape[-1]
  kernel = np.tile(gaussian_kernel(size, nsig)[:, :, None, None], (1, 1, channels, 1))
  return tf.nn.depthwise_conv2d(images, kernel, strides=[1, 1, 1, 1], padding="SAME")


def _batch_size(images):
  return tf.cast(tf.shape(images)[0], tf.float32)


def color_loss(dslr, enhanced):
  """Eq. 2-4: `sum((blur(dslr) - blur(enhanced))^2) / (2B)`."""
  diff = gaussian_blur(dslr) - gaussian_blur(enhanced)
  return tf.reduce_sum(tf.square(diff)) / (2.0 * _batch_size(dslr))


def discriminator_loss(probs, is_dslr):
  """The critic's summed cross-entropy `-sum(target * log(clip(p, 1e-10, 1)))`.

  `probs` is the discriminator's softmax [P(DSLR), P(enhanced)], `is_dslr` a [B]
  vector of 1 (DSLR patch shown) or 0 (enhanced patch shown).
  """
  is_dslr = tf.cast(tf.reshape(is_dslr, [-1, 1]), tf.float32)
  target = tf.concat([is_dslr, 1.0 - is_dslr], axis=1)
  probs = tf.clip_by_value(tf.cast(probs, tf.float32), 1e-10, 1.0)
  return -tf.reduce_sum(target * tf.math.log(probs))


def texture_loss(probs_enhanced, form="reference"):
  """Eq. 5, the generator's adversarial loss on enhanced patches only.

  `reference`: the released code's negative critic loss, `sum(log P(enhanced))`.
  `paper`: the standard generator objective `-sum(log P(DSLR))`.
  """
  if form == "reference":
    return -discriminator_loss(probs_enhanced, tf.zeros(tf.shape(probs_enhanced)[:1]))
  if form == "paper":
    p_dslr = tf.clip_by_value(tf.cast(probs_enhanced[:, 0], tf.float32), 1e-10, 1.0)
    return -tf.reduce_sum(tf.math.log(p_dslr))
  raise ValueError(f"texture form must be 'reference' or 'paper', got {form!r}")


def content_loss(features_enhanced, features_dslr):
  """Eq. 6: mean squared difference of VGG-19 relu5_4 features over B, H, W, C."""
  diff = tf.cast(features_enhanced, tf.float32) - tf.cast(features_dslr, tf.float32)
  return tf.reduce_mean(tf.square(diff))


def tv_loss(images):
  """Eq. 7: mean squared horizontal plus mean squared vertical differences."""
  images = tf.cast(images, tf.float32)
  dx = images[:, :, 1:, :] - images[:, :, :-1, :]
  dy = images[:, 1:, :, :] - images[:, :-1, :, :]
  return tf.reduce_mean(tf.square(dx)) + tf.reduce_mean(tf.square(dy))


def mse_loss(dslr, enhanced):
  """Plain pixel MSE, the loss of the Table 3 ablations and of the SRCNN baseline."""
  diff = tf.cast(dslr, tf.float32) - tf.cast(enhanced, tf.float32)
  return tf.reduce_mean(tf.square(diff))
