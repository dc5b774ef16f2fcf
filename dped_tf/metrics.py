"""Image-quality metrics (docs/method.md §3: PSNR, SSIM, MS-SSIM) on [0, 1] images."""

import tensorflow as tf

# Wang et al.'s five MS-SSIM scale weights, tf.image.ssim_multiscale's default.
_MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_FILTER_SIZE = 11


def psnr(a, b):
  """Per-image `20 log10(1 / sqrt(mse))`, shape [B]."""
  return tf.image.psnr(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=1.0)


def ssim(a, b):
  """Per-image SSIM (Table 2), 11x11 Gaussian window, shape [B]."""
  return tf.image.ssim(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=1.0)


def ms_ssim_scales(height, width):
  """How many of the 5 standard scales fit: the coarsest must hold the 11x11 window.

  Five need 161 px; DPED's 100x100 patches allow four (100, 50, 25, 12).
  """
  scales, side = 0, min(height, width)
  while scales < len(_MS_SSIM_WEIGHTS) and side >= _FILTER_SIZE:
    scales += 1
    side //= 2
  return max(scales, 1)


def ms_ssim(a, b):
  """Per-image MS-SSIM with as many standard scales as the size allows (weights
  renormalised to sum 1), shape [B]."""
  a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
  n = ms_ssim_scales(a.shape[1], a.shape[2])
  weights = _MS_SSIM_WEIGHTS[:n]
  weights = [w / sum(weights) for w in weights]
  return tf.image.ssim_multiscale(a, b, max_val=1.0, power_factors=weights,
                                  filter_size=min(_FILTER_SIZE, a.shape[1], a.shape[2]))
