"""Phone + DSLR photo pairs whose alignment is known, for the tests of `dped-tf align`."""

import cv2
import numpy as np


def known_homography(scale=0.8, degrees=2.0):
  """A DSLR -> phone homography: rotation by `degrees`, `scale`, a shift and a little
  perspective."""
  a = np.deg2rad(degrees)
  return np.array([[scale * np.cos(a), -scale * np.sin(a), -20],
                   [scale * np.sin(a), scale * np.cos(a), -15],
                   [2e-5, -1e-5, 1.0]])


def synthetic_phone(dslr, h, size, seed=0):
  """The DSLR photo seen by a worse camera through the homography `h` (DSLR -> phone):
  `size` (width, height), another colour response, gamma, and noise."""
  phone = cv2.warpPerspective(dslr, h, size, flags=cv2.INTER_AREA)
  x = (phone / 255.0) ** 1.2 * [1.1, 1.0, 0.85]
  x += np.random.default_rng(seed).normal(0, 0.02, x.shape)
  return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)
