"""Synthetic photos of any size for the enhancement tests and benchmarks."""

import numpy as np


def smooth_photo(height, width, seed=1):
  """A smooth colour field with fine noise, uint8 [H, W, 3] (made by broadcasting: cheap
  at 108 MP)."""
  rng = np.random.default_rng(seed)
  y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
  x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
  phase = np.array([0.0, 2.0, 4.0], np.float32)
  base = 0.5 + 0.35 * np.sin(6 * x + 4 * y + phase) * np.cos(3 * y - phase)
  noise = rng.normal(0, 0.03, (height, width, 1)).astype(np.float32)
  return np.clip((base + noise) * 255, 0, 255).astype(np.uint8)
