"""A seeded model of a worse camera, applied to a good photo (the sample data of docs/method.md §5).

The DSLR photo is taken as the scene. `simulate` passes it through a phone camera, in the
order light takes: lens (optical blur), sensor (lower effective resolution, vignetting,
Poisson-Gaussian noise), then the phone's image processor (leftover chroma noise, a wrong
white balance, a colour matrix, its tone curve and gamma, upscaling back to the photo's
size, JPEG). Every step is a small function on float32 RGB in [0, 1] (linear light until
`tone_curve`); one `CameraProfile` holds all the parameters of a camera. The three DPED
phones' profiles are ordered as in the paper's results (docs/method.md §6): `iphone` worst,
`blackberry`, `sony` mildest. `midrange` is none of them: a made-up fourth camera (green
cast, crushed contrast, heavy JPEG) for trying the own-phone workflow on a camera the DPED
phones never saw. All are plausible, not measured, cameras.
"""

import dataclasses

import cv2
import numpy as np

from dped_tf import image_io
from dped_tf.errors import DpedError

# Rec. 709 / sRGB luminance weights of linear RGB.
LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)


@dataclasses.dataclass(frozen=True)
class CameraProfile:
  """One simulated phone camera; `simulate` says in which order the steps run."""
  name: str
  blur_sigma: float      # lens: Gaussian point-spread function, sigma in px of the photo
  resolution: float      # sensor: effective linear resolution, fraction of the photo's
  vignetting: float      # lens: fraction of the light lost in the image corners
  full_well: float       # sensor: photo-electrons at white (shot noise std sqrt(x / full_well))
  read_noise: float      # sensor: Gaussian noise std, in units of white
  chroma_noise: float    # processor: std of the blotchy colour noise its denoiser leaves
  chroma_scale: float    # its grain size: Gaussian sigma in px of the photo
  wb_gains: tuple        # processor: white-balance error, gains on linear (R, G, B)
  wb_jitter: float       # per-photo spread of those gains (std of their logarithm)
  color_matrix: tuple    # processor: 3x3 on linear RGB, rows sum to 1 (grey stays grey)
  gamma: float           # processor: encoding exponent 1 / gamma (the DSLR photo is sRGB)
  contrast: float        # processor: tone-curve slope at mid grey (< 1: flatter)
  jpeg_quality: int      # processor: JPEG quality of the saved photo


PROFILES = {
    # iPhone 3GS: 3 MP, soft lens, small noisy sensor, warm cast, flat tones, strong JPEG.
    "iphone": CameraProfile(
        name="iphone", blur_sigma=1.2, resolution=0.5, vignetting=0.35, full_well=150.0,
        read_noise=0.012, chroma_noise=0.02, chroma_scale=4.0, wb_gains=(1.12, 1.0, 0.82),
        wb_jitter=0.03,
        color_matrix=((0.80, 0.17, 0.03), (0.08, 0.86, 0.06), (0.03, 0.22, 0.75)),
        gamma=1.8, contrast=0.80, jpeg_quality=70),
    # BlackBerry Passport: many pixels but a small sensor; cool cast, moderate noise.
    "blackberry": CameraProfile(
        name="blackberry", blur_sigma=0.9, resolution=0.7, vignetting=0.25, full_well=400.0,
        read_noise=0.006, chroma_noise=0.012, chroma_scale=3.0, wb_gains=(0.93, 1.0, 1.08),
        wb_jitter=0.02,
        color_matrix=((0.88, 0.10, 0.02), (0.05, 0.91, 0.04), (0.02, 0.12, 0.86)),
        gamma=2.0, contrast=0.90, jpeg_quality=80),
    # Sony Xperia Z: the mildest of the three.
    "sony": CameraProfile(
        name="sony", blur_sigma=0.7, resolution=0.8, vignetting=0.15, full_well=1000.0,
        read_noise=0.004, chroma_noise=0.006, chroma_scale=2.0, wb_gains=(1.04, 1.0, 0.95),
        wb_jitter=0.015,
        color_matrix=((0.94, 0.05, 0.01), (0.03, 0.95, 0.02), (0.01, 0.06, 0.93)),
        gamma=2.1, contrast=0.95, jpeg_quality=88),
    # Not a DPED phone: a made-up camera between blackberry and sony in noise and blur,
    # with a green-magenta cast, high contrast and a low JPEG quality none of them has.
    "midrange": CameraProfile(
        name="midrange", blur_sigma=0.8, resolution=0.75, vignetting=0.2, full_well=600.0,
        read_noise=0.005, chroma_noise=0.01, chroma_scale=2.5, wb_gains=(0.95, 1.08, 0.92),
        wb_jitter=0.02,
        color_matrix=((0.90, 0.12, -0.02), (0.06, 0.90, 0.04), (0.00, 0.15, 0.85)),
        gamma=2.3, contrast=1.12, jpeg_quality=75),
}


def profile_for(phone, camera=None):
  """The profile to simulate `phone` with: `camera` if given, else the profile of the same
  name (the DPED phones and `midrange`). DpedError naming the profiles otherwise."""
  name = camera or phone
  if name not in PROFILES:
    raise DpedError(f"no simulated camera {name!r} for phone {phone!r}: choose one with "
                    f"--camera ({', '.join(PROFILES)})")
  return PROFILES[name]


def srgb_to_linear(image):
  """uint8 sRGB -> float32 linear light in [0, 1] (the exact sRGB curve)."""
  x = image.astype(np.float32) / 255.0
  return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def optical_blur(image, sigma):
  """The lens: a Gaussian point-spread function of std `sigma` px."""
  return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT101)


def to_sensor(image, resolution):
  """Area-averages onto a sensor grid `resolution` times the photo's linear size."""
  height, width = image.shape[:2]
  size = (max(1, round(width * resolution)), max(1, round(height * resolution)))
  return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def vignette(image, strength):
  """Light fall-off `1 - strength * r^2`, r = 1 in the corners."""
  height, width = image.shape[:2]
  y = (np.arange(height, dtype=np.float32) - (height - 1) / 2) / ((height - 1) / 2 or 1)
  x = (np.arange(width, dtype=np.float32) - (width - 1) / 2) / ((width - 1) / 2 or 1)
  r2 = (y[:, None] ** 2 + x[None, :] ** 2) / 2
  return image * (1 - strength * r2)[..., None]


def sensor_noise(image, full_well, read_noise, rng):
  """Poisson-Gaussian noise: photon counts at `full_well` electrons for white, plus read
  noise of std `read_noise`."""
  electrons = rng.poisson(np.clip(image, 0, None) * full_well)
  noisy = electrons / full_well + rng.normal(0.0, read_noise, image.shape)
  return noisy.astype(np.float32)


def chroma_noise(image, std, scale, rng):
  """Colour-only noise of std `std` (per channel) and grain `scale` px: Gaussian noise,
  blurred, rescaled to `std`, with its luminance removed."""
  noise = optical_blur(rng.standard_normal(image.shape).astype(np.float32), scale)
  noise *= std / max(float(noise.std()), 1e-12)
  noise -= (noise @ LUMA)[..., None]
  return image + noise


def white_balance(image, gains):
  """Per-channel gains on linear RGB (a wrong white balance)."""
  return image * np.asarray(gains, np.float32)


def apply_color_matrix(image, matrix):
  """out[c] = sum_k matrix[c][k] * in[k]."""
  return image @ np.asarray(matrix, np.float32).T


def tone_curve(image, gamma, contrast):
  """Linear light -> display values: clip to [0, 1], encode with 1 / `gamma`, then scale
  the distance from mid grey by `contrast`."""
  encoded = np.clip(image, 0, 1) ** (1.0 / gamma)
  return np.clip(0.5 + contrast * (encoded - 0.5), 0, 1).astype(np.float32)


def resize_to(image, height, width):
  """The processor's upscaling back to the photo's size (bilinear)."""
  return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


def jpeg(image, quality):
  """float [0, 1] RGB -> uint8 RGB through a JPEG round trip at `quality`."""
  rgb = np.clip(np.round(image * 255), 0, 255).astype(np.uint8)
  data = image_io.encode_photo(".jpg", image_io.Photo(rgb), quality)
  return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def photo_wb_gains(profile, rng):
  """The profile's white-balance error with this photo's random spread."""
  return tuple(np.asarray(profile.wb_gains) * np.exp(rng.normal(0, profile.wb_jitter, 3)))


def simulate(image, profile, seed):
  """uint8 RGB photo -> the same scene as `profile`'s camera would save it (uint8 RGB,
  same size). Deterministic for `seed`."""
  rng = np.random.default_rng(seed)
  height, width = image.shape[:2]
  x = srgb_to_linear(image)
  x = optical_blur(x, profile.blur_sigma)
  x = to_sensor(x, profile.resolution)
  x = vignette(x, profile.vignetting)
  x = sensor_noise(x, profile.full_well, profile.read_noise, rng)
  x = chroma_noise(x, profile.chroma_noise, profile.chroma_scale * profile.resolution, rng)
  x = white_balance(x, photo_wb_gains(profile, rng))
  x = apply_color_matrix(x, profile.color_matrix)
  x = tone_curve(x, profile.gamma, profile.contrast)
  x = resize_to(x, height, width)
  return jpeg(x, profile.jpeg_quality)
