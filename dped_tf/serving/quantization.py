"""LiteRT int8 with the AI Edge Quantizer (the path LiteRT's documentation recommends),
calibrated on phone-side training patches (docs/serving.md, "LiteRT precisions").

`dynamic_int8`: int8 weights, float32 activations (recipe `dynamic_wi8_afp32`), no
calibration. `int8`: int8 weights and activations (`static_wi8_ai8`), calibrated on
patches; its input and output tensors are int8 too (`runtimes.litert_runner` converts).
"""

import os

import numpy as np

from dped_tf import image_io
from dped_tf.dataloaders import camera_sim
from dped_tf.dataloaders import sample
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

aeq_quantizer = lazy_import("ai_edge_quantizer.quantizer")
aeq_recipe = lazy_import("ai_edge_quantizer.recipe")

PATCH = 100  # DPED's patch side (docs/method.md §5)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
SAMPLE_PHONE = "sony"


def _crops(photo, count, rng, size=PATCH):
  height, width = photo.shape[:2]
  if min(height, width) < size:
    return []
  ys = rng.integers(0, height - size + 1, count)
  xs = rng.integers(0, width - size + 1, count)
  return [photo[y:y + size, x:x + size] for y, x in zip(ys, xs)]


def _as_batches(patches):
  return [(p[None].astype(np.float32) / 255.0) for p in patches]


def calibration_patches(folder=None, count=32, seed=0):
  """(list of float32 [1, 100, 100, 3] patches, where they come from): `count` patches of
  the images in `folder` (DPED's `training_data/<phone>/` patches, or photos, which are
  cropped), else of the embedded sample's training photos seen by the simulated sony
  camera (`dataloaders.sample`)."""
  rng = np.random.default_rng(seed)
  if folder is None:
    photos = [sample.phone_view(sample.load_photo(n), camera_sim.PROFILES[SAMPLE_PHONE],
                                seed + i) for i, n in enumerate(sample.PHOTOS["train"])]
    source = (f"the embedded sample's training photos ({len(photos)} scikit-image photos, "
              f"simulated {SAMPLE_PHONE} camera)")
  else:
    if not os.path.isdir(folder):
      raise DpedError(f"{folder}: calibration folder not found")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
      raise DpedError(f"{folder}: no .jpg or .png images to calibrate on")
    picked = rng.choice(len(names), min(count, len(names)), replace=False)
    photos = [image_io.read_rgb8(os.path.join(folder, names[i])) for i in sorted(picked)]
    source = f"{len(photos)} images of {folder}"
  per_photo = -(-count // len(photos))
  patches = [c for p in photos for c in _crops(p, per_photo, rng)][:count]
  if not patches:
    raise DpedError(f"{folder}: no image is at least {PATCH}x{PATCH} pixels")
  return _as_batches(patches), source


def heldout_patches(count=16, seed=1):
  """float32 [1, 100, 100, 3] patches of the embedded sample's test photo (never calibrated
  on), seen by the simulated sony camera."""
  rng = np.random.default_rng(seed)
  (name,) = sample.PHOTOS["test"]
  photo = sample.phone_view(sample.load_photo(name), camera_sim.PROFILES[SAMPLE_PHONE],
                            seed)
  return _as_batches(_crops(photo, count, rng))


def quantize(float32_model, precision, calibration=None):
  """LiteRT bytes of `float32_model` (LiteRT bytes) at `precision` (`dynamic_int8`, or
  `int8` calibrated on `calibration`, a list of float32 [1, h, w, 3] arrays)."""
  if precision == "dynamic_int8":
    quantizer = aeq_quantizer.Quantizer(float32_model, aeq_recipe.dynamic_wi8_afp32())
    return bytes(quantizer.quantize(enable_progress_report=False).quantized_model)
  if precision != "int8":
    raise ValueError(f"no int8 recipe for precision {precision!r}")
  if not calibration:
    raise ValueError("int8 needs calibration patches")
  quantizer = aeq_quantizer.Quantizer(float32_model, aeq_recipe.static_wi8_ai8())
  ranges = quantizer.calibrate({"serving_default": [{"images": x} for x in calibration]})
  return bytes(quantizer.quantize(ranges, enable_progress_report=False).quantized_model)
