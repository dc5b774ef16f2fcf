"""Image metrics re-derived with numpy and scipy, independently of dped_tf.metrics: the
oracles the metric tests compare with."""

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage
from scipy import signal


def np_psnr(a, b):
  return 20 * np.log10(1 / np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


def np_ssim(a, b, size=11, sigma=1.5):
  """Wang et al.'s SSIM: 11x11 Gaussian (sigma 1.5) window over valid positions, per
  channel, averaged; C1 = 0.01^2, C2 = 0.03^2 for [0, 1] images."""
  coords = np.arange(size) - (size - 1) / 2
  g = np.exp(-coords ** 2 / (2 * sigma ** 2))
  window = np.outer(g, g) / np.outer(g, g).sum()
  a, b = a.astype(np.float64), b.astype(np.float64)

  def blur(x):
    return np.einsum("hwcij,ij->hwc", sliding_window_view(x, (size, size), axis=(0, 1)), window)

  mu_a, mu_b = blur(a), blur(b)
  var_a, var_b = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2
  cov = blur(a * b) - mu_a * mu_b
  c1, c2 = 0.01 ** 2, 0.03 ** 2
  return np.mean((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                 / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))


def np_released_ms_ssim(enhanced, dslr):
  """The released code's MS-SSIM of one batch as one array, re-derived with scipy: 0-255
  values, 5 scales; at each, a Gaussian window (11 px, sigma 1.5, both shrunk to fit)
  over valid positions, mean SSIM and contrast-structure maps over the whole batch; then a
  2x2 box filter (reflecting edges) and every other pixel."""
  weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
  x, y = enhanced.astype(np.float64) * 255, dslr.astype(np.float64) * 255
  ssims, css = [], []
  for _ in weights:
    size = min(11, x.shape[1], x.shape[2])
    sigma = size * 1.5 / 11
    c = np.arange(size) - (size - 1) / 2
    g = np.exp(-(c[:, None] ** 2 + c[None] ** 2) / (2 * sigma ** 2))
    window = (g / g.sum())[None, :, :, None]
    blur = lambda t, w=window: signal.fftconvolve(t, w, mode="valid")  # noqa: E731
    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    ssims.append(np.mean((2 * mu_x * mu_y + c1) / (mu_x ** 2 + mu_y ** 2 + c1) * cs))
    css.append(np.mean(cs))
    x, y = (ndimage.convolve(t, np.ones((1, 2, 2, 1)) / 4, mode="reflect")[:, ::2, ::2]
            for t in (x, y))
  return np.prod(np.array(css[:-1]) ** weights[:-1]) * ssims[-1] ** weights[-1]


def np_luma(image):
  """ITU-R 601 luma of RGB pixels, float64 (independent of OpenCV's grey conversion)."""
  return np.asarray(image, np.float64) @ [0.299, 0.587, 0.114]


def np_ncc(a, b):
  """Normalised cross-correlation of the lumas of two equal-size RGB images."""
  a, b = np_luma(a), np_luma(b)
  a, b = a - a.mean(), b - b.mean()
  return np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))
