"""The four losses against independent numpy implementations of docs/method.md §3."""

import numpy as np
import pytest
from scipy import signal, stats
import tensorflow as tf

from dped_tf import losses

RTOL = 1e-5


def np_kernel():
  # docs/method.md §3, with scipy's normal CDF (the library uses math.erf).
  nsig, size = 3, 21
  d = (2 * nsig + 1) / size
  x = np.linspace(-nsig - d / 2, nsig + d / 2, size + 1)
  k1 = np.diff(stats.norm.cdf(x))
  k2 = np.sqrt(np.outer(k1, k1))
  return k2 / k2.sum()


def np_blur(images):
  k = np_kernel()
  out = np.zeros_like(images, dtype=np.float64)
  for b in range(images.shape[0]):
    for c in range(images.shape[3]):
      out[b, :, :, c] = signal.correlate2d(images[b, :, :, c], k, mode="same",
                                           boundary="fill", fillvalue=0)
  return out


@pytest.fixture
def pair():
  rng = np.random.default_rng(0)
  dslr = rng.random((3, 24, 31, 3)).astype(np.float32)
  enhanced = np.clip(dslr + rng.normal(0, 0.1, dslr.shape), 0, 1).astype(np.float32)
  return dslr, enhanced


def test_gaussian_kernel_matches_spec():
  k = losses.gaussian_kernel()
  assert k.shape == (21, 21)
  np.testing.assert_allclose(k, np_kernel(), rtol=RTOL, atol=1e-9)
  assert abs(float(k.sum()) - 1.0) < 1e-6
  assert losses.gaussian_kernel() is k  # built once
  with pytest.raises(ValueError):
    k[0, 0] = 1.0


def test_color_loss(pair):
  dslr, enhanced = pair
  expected = np.sum((np_blur(dslr) - np_blur(enhanced)) ** 2) / (2 * len(dslr))
  np.testing.assert_allclose(float(losses.color_loss(dslr, enhanced)), expected, rtol=RTOL)


def test_color_loss_ignores_what_the_blur_removes(pair):
  dslr, _ = pair
  checker = (np.indices((24, 31)).sum(0) % 2)[None, :, :, None] * 0.2 - 0.1
  shifted = dslr + checker.astype(np.float32)
  assert float(losses.color_loss(dslr, shifted)) < 0.05 * float(
      losses.color_loss(dslr, dslr + 0.1))


def test_discriminator_and_texture_losses():
  probs = np.array([[0.9, 0.1], [0.3, 0.7], [1.0, 0.0]], np.float32)
  is_dslr = np.array([1, 0, 0], np.float32)
  target = np.stack([is_dslr, 1 - is_dslr], 1)
  clipped = np.clip(probs, 1e-10, 1.0)
  expected_d = -np.sum(target * np.log(clipped))
  np.testing.assert_allclose(float(losses.discriminator_loss(probs, is_dslr)), expected_d,
                             rtol=RTOL)
  # Reference: the negative critic loss with every sample labelled enhanced (summed).
  np.testing.assert_allclose(float(losses.texture_loss(probs)), np.sum(np.log(clipped[:, 1])),
                             rtol=RTOL)
  np.testing.assert_allclose(float(losses.texture_loss(probs, "paper")),
                             -np.sum(np.log(clipped[:, 0])), rtol=RTOL)
  with pytest.raises(ValueError):
    losses.texture_loss(probs, "other")


def test_texture_loss_falls_as_the_critic_is_fooled():
  fooled = np.array([[0.99, 0.01]] * 4, np.float32)
  caught = np.array([[0.01, 0.99]] * 4, np.float32)
  for form in ("reference", "paper"):
    assert float(losses.texture_loss(fooled, form)) < float(losses.texture_loss(caught, form))


def test_content_loss():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2, 2, 7, 7, 16)).astype(np.float32)
  np.testing.assert_allclose(float(losses.content_loss(a, b)),
                             np.mean((a.astype(np.float64) - b) ** 2), rtol=RTOL)


def test_tv_loss(pair):
  _, x = pair
  x64 = x.astype(np.float64)
  expected = (np.mean((x64[:, :, 1:] - x64[:, :, :-1]) ** 2)
              + np.mean((x64[:, 1:] - x64[:, :-1]) ** 2))
  np.testing.assert_allclose(float(losses.tv_loss(x)), expected, rtol=RTOL)


def test_mse_loss(pair):
  dslr, enhanced = pair
  np.testing.assert_allclose(float(losses.mse_loss(dslr, enhanced)),
                             np.mean((dslr.astype(np.float64) - enhanced) ** 2), rtol=RTOL)


def test_losses_are_float32_under_bfloat16_inputs(pair):
  dslr, enhanced = (tf.cast(x, tf.bfloat16) for x in pair)
  for value in (losses.color_loss(dslr, enhanced), losses.tv_loss(enhanced),
                losses.mse_loss(dslr, enhanced)):
    assert value.dtype == tf.float32
