"""Image-quality metrics and the two test protocols (docs/method.md §6), on [0, 1] images.

`TestMetrics` is the one implementation of the test protocols; training-time evaluation
(`DPEDTrainer.test_step`) and `dped-tf evaluate` both accumulate it:

- per patch: the mean over all patches of each patch's PSNR and SSIM, outputs clipped to
  [0, 1] (what a saved photo holds);
- the released code's (Table 2's numbers): for each full batch of `full_batch` patches
  (50 in Table 2) `MSE = sum((dslr - enhanced)^2) / (H W 3 B)` and `PSNR = 20 log10(1 /
  sqrt(MSE))`, and the MS-SSIM of the batch as one array (5 scales, 0-255 values); both
  averaged over the full batches (a last partial batch is dropped), on the raw model
  output as the released code scores it. The per-patch mean PSNR is always at least as
  high (Jensen's inequality), so the protocols must not be mixed in one table.
"""

import keras
import numpy as np
import tensorflow as tf

RELEASED_BATCH = 50
# Wang et al.'s five MS-SSIM scale weights (the released code's; they sum to 1.0001).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_FILTER_SIZE, _FILTER_SIGMA = 11, 1.5


def psnr(a, b):
  """Per-image `20 log10(1 / sqrt(mse))`, shape [B]."""
  return tf.image.psnr(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=1.0)


def ssim(a, b):
  """Per-image SSIM (Table 2), 11x11 Gaussian window, shape [B]."""
  return tf.image.ssim(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=1.0)


def _gaussian_window(size, sigma, channels):
  """A normalised `size` x `size` Gaussian as a depthwise kernel (float64)."""
  coords = np.arange(size) - (size - 1) / 2
  g = np.exp(-(coords[:, None] ** 2 + coords[None, :] ** 2) / (2 * sigma ** 2))
  return tf.constant(np.tile((g / g.sum())[:, :, None, None], (1, 1, channels, 1)))


def _ssim_and_cs(x, y):
  """Per-image means of the SSIM and contrast-structure maps over the valid positions of
  a Gaussian window (11 px, sigma 1.5; both shrunk where the image is smaller), 0-255."""
  size = min(_FILTER_SIZE, x.shape[1], x.shape[2])
  window = _gaussian_window(size, size * _FILTER_SIGMA / _FILTER_SIZE, x.shape[3])
  blur = lambda t: tf.nn.depthwise_conv2d(t, window, [1, 1, 1, 1], "VALID")  # noqa: E731
  mu_x, mu_y = blur(x), blur(y)
  var_x = blur(x * x) - mu_x * mu_x
  var_y = blur(y * y) - mu_y * mu_y
  cov = blur(x * y) - mu_x * mu_y
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  cs_map = (2 * cov + c2) / (var_x + var_y + c2)
  ssim_map = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs_map
  return tf.reduce_mean(ssim_map, [1, 2, 3]), tf.reduce_mean(cs_map, [1, 2, 3])


def _halve(x):
  """2x2 box average keeping every other pixel; an odd last row/column is averaged with
  its mirror (itself), as `scipy.ndimage.convolve(mode='reflect')` then `[::2]`."""
  x = tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]], mode="SYMMETRIC")
  return tf.nn.avg_pool2d(x, 2, 2, "VALID")


def ms_ssim_stats(a, b):
  """Per-image means of the SSIM and cs maps at the released MS-SSIM's 5 scales: two
  float64 [B, 5] tensors. `released_ms_ssim` combines their batch means."""
  x, y = (tf.cast(t, tf.float64) * 255.0 for t in (a, b))
  ssims, css = [], []
  for level in range(len(MS_SSIM_WEIGHTS)):
    s, c = _ssim_and_cs(x, y)
    ssims.append(s)
    css.append(c)
    if level + 1 < len(MS_SSIM_WEIGHTS):
      x, y = _halve(x), _halve(y)
  return tf.stack(ssims, 1), tf.stack(css, 1)


def released_ms_ssim(ssim_means, cs_means):
  """MS-SSIM from the per-scale means over one batch ([5] each): the cs terms of the
  four finer scales and the SSIM of the coarsest, each to its weight. A negative mean
  (anti-correlated images; small patches' coarse scales), whose fractional power is NaN
  in the released code, counts as 0 as in `tf.image.ssim_multiscale`."""
  w = tf.constant(MS_SSIM_WEIGHTS, tf.float64)
  cs_means, ssim_means = tf.nn.relu(cs_means), tf.nn.relu(ssim_means)
  return tf.reduce_prod(cs_means[:-1] ** w[:-1]) * ssim_means[-1] ** w[-1]


def _replica_context():
  ctx = tf.distribute.get_replica_context()
  return ctx if ctx is not None and ctx.num_replicas_in_sync > 1 else None


class TestMetrics(keras.metrics.Metric):
  """Both test protocols accumulated over batches of (dslr, enhanced) pairs.

  `full_batch`: the released protocol's batch size; batches of another size count for
  the per-patch protocol only. Under `tf.distribute` each replica passes its share of the
  batch; the released protocol's batch statistics are summed over replicas first.
  `result()`: {psnr, ssim, released_psnr, released_ms_ssim, patches, full_batches}; the
  released figures are NaN until a full batch was seen.
  """

  _SUMS = ("patches", "psnr", "ssim", "full_batches", "released_psnr", "released_ms_ssim")

  def __init__(self, full_batch=RELEASED_BATCH, name="test_metrics", **kwargs):
    super().__init__(name=name, dtype="float64", **kwargs)
    self.full_batch = full_batch
    self.sums = {k: self.add_variable(shape=(), initializer="zeros", name=k, dtype="float64",
                                      aggregation="sum") for k in self._SUMS}

  def update_state(self, dslr, enhanced):
    dslr, enhanced = tf.cast(dslr, tf.float32), tf.cast(enhanced, tf.float32)
    clipped = tf.clip_by_value(enhanced, 0.0, 1.0)
    f64 = lambda t: tf.cast(t, tf.float64)  # noqa: E731
    local = {"patches": f64(tf.shape(dslr)[0]),
             "sse": tf.reduce_sum(tf.square(f64(dslr) - f64(enhanced))),
             "values": f64(tf.size(dslr))}
    ssim_means, cs_means = ms_ssim_stats(dslr, enhanced)
    local["ssim_sums"], local["cs_sums"] = (tf.reduce_sum(ssim_means, 0),
                                            tf.reduce_sum(cs_means, 0))
    ctx = _replica_context()
    batch = ctx.all_reduce("sum", local) if ctx else local
    share = 1.0 / ctx.num_replicas_in_sync if ctx else 1.0  # the sums add over replicas
    is_full = tf.equal(batch["patches"], self.full_batch)
    batch_psnr = -10.0 * tf.math.log(batch["sse"] / batch["values"]) / np.log(10.0)
    batch_ms_ssim = released_ms_ssim(batch["ssim_sums"] / batch["patches"],
                                     batch["cs_sums"] / batch["patches"])
    full = lambda v: tf.where(is_full, v * share, tf.constant(0.0, tf.float64))  # noqa: E731
    for name, value in (
        ("patches", local["patches"]),
        ("psnr", tf.reduce_sum(f64(psnr(clipped, dslr)))),
        ("ssim", tf.reduce_sum(f64(ssim(clipped, dslr)))),
        ("full_batches", full(tf.constant(1.0, tf.float64))),
        ("released_psnr", full(batch_psnr)),
        ("released_ms_ssim", full(batch_ms_ssim))):
      self.sums[name].assign_add(value)

  def result(self):
    s = {k: tf.convert_to_tensor(v) for k, v in self.sums.items()}
    nan = tf.constant(np.nan, tf.float64)
    mean = lambda k, n: tf.where(s[n] > 0, s[k] / tf.maximum(s[n], 1.0), nan)  # noqa: E731
    return {"psnr": mean("psnr", "patches"), "ssim": mean("ssim", "patches"),
            "released_psnr": mean("released_psnr", "full_batches"),
            "released_ms_ssim": mean("released_ms_ssim", "full_batches"),
            "patches": s["patches"], "full_batches": s["full_batches"]}

  def get_config(self):
    return {**super().get_config(), "full_batch": self.full_batch}
