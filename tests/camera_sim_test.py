"""The camera simulator: each step changes the statistic it claims to, the chain is seeded."""

import numpy as np
import pytest
from skimage import data as skdata
from skimage import metrics

from dped_tf import configs
from dped_tf.dataloaders import camera_sim as cs
from dped_tf.errors import DpedError


@pytest.fixture(scope="module")
def photo():
  return skdata.astronaut()[::2, ::2].copy()  # 256x256 real colour photo


def high_freq_energy(image):
  """Mean squared 4-neighbour Laplacian (numpy, independent of OpenCV)."""
  x = np.asarray(image, np.float64)
  lap = 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]
  return float(np.mean(lap ** 2))


def test_srgb_to_linear_matches_the_srgb_curve():
  x = np.arange(256, dtype=np.uint8).reshape(1, 256, 1)
  lin = cs.srgb_to_linear(x).ravel()
  assert lin[0] == 0 and lin[255] == pytest.approx(1.0)
  assert lin[10] == pytest.approx(10 / 255 / 12.92)
  assert lin[128] == pytest.approx(((128 / 255 + 0.055) / 1.055) ** 2.4, rel=1e-6)


def test_optical_blur_removes_detail_and_keeps_the_mean(photo):
  lin = cs.srgb_to_linear(photo)
  blurred = cs.optical_blur(lin, 1.5)
  assert high_freq_energy(blurred) < 0.2 * high_freq_energy(lin)
  assert blurred.mean() == pytest.approx(lin.mean(), rel=1e-3)


def test_to_sensor_lowers_resolution(photo):
  lin = cs.srgb_to_linear(photo)
  small = cs.to_sensor(lin, 0.5)
  assert small.shape == (128, 128, 3)
  np.testing.assert_allclose(small[3, 5], lin[6:8, 10:12].mean(axis=(0, 1)), rtol=1e-5)
  back = cs.resize_to(small, 256, 256)
  assert back.shape == lin.shape
  assert high_freq_energy(back) < 0.5 * high_freq_energy(lin)


def test_vignette_darkens_the_corners_by_strength():
  out = cs.vignette(np.ones((101, 201, 3), np.float32), 0.3)
  assert out[50, 100] == pytest.approx([1, 1, 1])
  for y, x in ((0, 0), (0, 200), (100, 0), (100, 200)):
    np.testing.assert_allclose(out[y, x], 0.7, rtol=1e-6)
  np.testing.assert_allclose(out[50, 200], 1 - 0.3 / 2, rtol=1e-6)  # edge midpoint: r^2 = 1/2


def test_sensor_noise_is_poisson_gaussian_and_signal_dependent():
  rng = np.random.default_rng(0)
  full_well, read = 200.0, 0.01
  variances = []
  for level in (0.1, 0.6):
    flat = np.full((200, 200, 3), level, np.float32)
    noisy = cs.sensor_noise(flat, full_well, read, rng)
    assert noisy.mean() == pytest.approx(level, abs=2e-3)
    expected = level / full_well + read ** 2
    assert noisy.var() == pytest.approx(expected, rel=0.05)
    assert high_freq_energy(noisy[..., 1]) > 1e-3 > high_freq_energy(flat[..., 1])
    variances.append(noisy.var())
  assert variances[1] > 3 * variances[0]


def test_chroma_noise_changes_colour_not_luminance():
  rng = np.random.default_rng(1)
  flat = np.full((128, 128, 3), 0.4, np.float32)
  out = cs.chroma_noise(flat, 0.02, 3.0, rng)
  np.testing.assert_allclose(out @ cs.LUMA, flat @ cs.LUMA, atol=1e-6)
  chroma = out[..., 0] - out[..., 1]
  assert 0.01 < chroma.std() < 0.06
  # Grainy at the given scale: neighbours correlate, unlike white noise.
  corr = np.corrcoef(chroma[:, :-1].ravel(), chroma[:, 1:].ravel())[0, 1]
  assert corr > 0.8


def test_white_balance_shifts_the_channel_means(photo):
  lin = cs.srgb_to_linear(photo)
  out = cs.white_balance(lin, (1.2, 1.0, 0.8))
  ratio = out.mean(axis=(0, 1), dtype=np.float64) / lin.mean(axis=(0, 1), dtype=np.float64)
  np.testing.assert_allclose(ratio, [1.2, 1.0, 0.8], rtol=1e-5)


@pytest.mark.parametrize("phone", list(cs.PROFILES))
def test_color_matrix_keeps_grey_and_lowers_saturation(photo, phone):
  matrix = cs.PROFILES[phone].color_matrix
  np.testing.assert_allclose(np.sum(matrix, axis=1), 1.0, atol=1e-9)
  lin = cs.srgb_to_linear(photo)
  out = cs.apply_color_matrix(lin, matrix)
  np.testing.assert_allclose(out, np.einsum("ck,hwk->hwc", np.asarray(matrix), lin),
                             atol=1e-6)
  grey = np.full((2, 2, 3), 0.3, np.float32)
  np.testing.assert_allclose(cs.apply_color_matrix(grey, matrix), grey, atol=1e-6)
  assert np.std(out, axis=2).mean() < np.std(lin, axis=2).mean()


def test_tone_curve_gamma_and_contrast():
  x = np.array([0.0, 0.18, 0.5, 1.0], np.float32).reshape(1, 4, 1)
  np.testing.assert_allclose(cs.tone_curve(x, 2.0, 1.0).ravel(),
                             [0, 0.18 ** 0.5, 0.5 ** 0.5, 1], rtol=1e-6)
  flat = cs.tone_curve(x, 2.0, 0.8).ravel()
  np.testing.assert_allclose(flat, 0.5 + 0.8 * (np.array([0, 0.18, 0.5, 1]) ** 0.5 - 0.5),
                             rtol=1e-6)
  assert np.ptp(flat) == pytest.approx(0.8)


def test_jpeg_quality_sets_the_error(photo):
  x = photo.astype(np.float32) / 255
  errors = [np.abs(cs.jpeg(x, q).astype(float) - photo).mean() for q in (30, 70, 95)]
  assert errors[0] > errors[1] > errors[2] > 0


def test_profiles_are_ordered_from_iphone_worst_to_sony_mildest(photo):
  iphone, blackberry, sony = (cs.PROFILES[p] for p in ("iphone", "blackberry", "sony"))
  for a, b in ((iphone, blackberry), (blackberry, sony)):
    assert a.blur_sigma > b.blur_sigma and a.resolution < b.resolution
    assert a.full_well < b.full_well and a.jpeg_quality < b.jpeg_quality
  scores = [metrics.peak_signal_noise_ratio(photo, cs.simulate(photo, p, 0))
            for p in (iphone, blackberry, sony)]
  assert scores[0] < scores[1] < scores[2]


def test_simulate_is_reproducible_for_a_seed(photo):
  profile = cs.PROFILES["blackberry"]
  a = cs.simulate(photo, profile, 7)
  assert a.shape == photo.shape and a.dtype == np.uint8
  np.testing.assert_array_equal(a, cs.simulate(photo, profile, 7))
  assert np.abs(a.astype(int) - cs.simulate(photo, profile, 8)).mean() > 0.5


def test_profile_for_a_new_phone_name():
  assert cs.profile_for("sony") is cs.PROFILES["sony"]
  assert cs.profile_for("my-phone", "midrange") is cs.PROFILES["midrange"]
  assert "midrange" not in configs.DPED_PHONES
  with pytest.raises(DpedError, match="my-phone.*--camera"):
    cs.profile_for("my-phone")
