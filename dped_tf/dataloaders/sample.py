"""The embedded sample dataset (docs/method.md §5 layout): real colour photos that ship inside the
scikit-image wheel are the DSLR side; the phone side is the same scene seen through a
slightly misaligned rig (a small random rotation, scale and shift, under `MAX_RIG_SHIFT`
px anywhere, as the residual of DPED's alignment) and the camera simulator. Train and test
are split by photo. No network: the photos are read from scikit-image's own data folder.
"""

import os
import shutil

import cv2
import numpy as np

from dped_tf import fileio
from dped_tf import image_io
from dped_tf import progress as progress_lib
from dped_tf.dataloaders import camera_sim
from dped_tf.dataloaders import dped_folder
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

try:
  import skimage  # its photos, and the metrics of `patch_metrics`
except ImportError:  # the `sample` extra: photo_dir() says so
  skimage = None
tfrecords = lazy_import("dped_tf.dataloaders.tfrecords")

# Real colour photos shipped in the scikit-image wheel (motorcycle_right is left out: it is
# the same scene as motorcycle_left and would blur the photo split).
PHOTOS = {"train": ("astronaut.png", "coffee.png", "rocket.jpg", "motorcycle_left.png"),
          "test": ("chelsea.png",)}
MAX_RIG_SHIFT = 3.0  # px: the largest displacement of the phone view anywhere


def photo_dir():
  if skimage is None:
    raise DpedError("scikit-image: not installed; the sample dataset needs the `sample` "
                    "extra (pip install 'dped_tf[sample]')")
  return os.path.join(os.path.dirname(skimage.__file__), "data")


def load_photo(name):
  path = os.path.join(photo_dir(), name)
  try:
    return image_io.read_rgb8(path)
  except DpedError:
    raise DpedError(f"{path}: missing or unreadable scikit-image photo") from None


def rig_misalignment(height, width, rng, max_shift=MAX_RIG_SHIFT):
  """A random 2x3 affine map (rotation and scale about the centre, plus a shift) that moves
  no pixel of a `height` x `width` frame by more than `max_shift` px: half the budget for
  the shift, half for rotation and scale at the corners."""
  radius = np.hypot(height, width) / 2
  angle, stretch = rng.uniform(-1, 1, 2) * max_shift / (4 * radius)
  shift = rng.uniform(-1, 1, 2) * max_shift / (2 * np.sqrt(2))
  linear = (1 + stretch) * np.array([[np.cos(angle), -np.sin(angle)],
                                     [np.sin(angle), np.cos(angle)]])
  centre = np.array([(width - 1) / 2, (height - 1) / 2])
  return np.hstack([linear, (centre - linear @ centre + shift)[:, None]])


def phone_view(photo, profile, seed):
  """The phone side of one photo: the rig's misalignment, then the simulated camera."""
  rng = np.random.default_rng(seed)
  height, width = photo.shape[:2]
  moved = cv2.warpAffine(photo, rig_misalignment(height, width, rng), (width, height),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
  return camera_sim.simulate(moved, profile, int(rng.integers(2**31)))


def split_counts(total, areas):
  """`total` split in proportion to `areas` (largest remainders), summing to `total`."""
  share = np.asarray(areas, np.float64) * total / np.sum(areas)
  counts = np.floor(share).astype(int)
  counts[np.argsort(counts - share, kind="stable")[:total - counts.sum()]] += 1
  return counts.tolist()


def random_crops(phone, dslr, count, patch_size, rng):
  """`count` (phone, dslr) patches at the same random positions, away from the border the
  misalignment reflected."""
  margin = int(np.ceil(MAX_RIG_SHIFT)) + 1
  height, width = dslr.shape[:2]
  if min(height, width) < patch_size + 2 * margin:
    raise DpedError(f"patch_size {patch_size}: too large for a {width}x{height} sample photo")
  ys = rng.integers(margin, height - patch_size - margin + 1, count)
  xs = rng.integers(margin, width - patch_size - margin + 1, count)
  return [(phone[y:y + patch_size, x:x + patch_size], dslr[y:y + patch_size, x:x + patch_size])
          for y, x in zip(ys, xs)]


def patch_metrics(patches):
  """Mean PSNR (dB) and SSIM of phone vs DSLR over uint8 patch pairs."""
  psnr = [skimage.metrics.peak_signal_noise_ratio(d, p, data_range=255) for p, d in patches]
  ssim = [skimage.metrics.structural_similarity(d, p, channel_axis=2, data_range=255)
          for p, d in patches]
  return float(np.mean(psnr)), float(np.mean(ssim))


def build_sample(out_dir, phone, patch_size=100, train_patches=1500, test_patches=200,
                 seed=0, overwrite=False, pairs_per_shard=2000, camera=None, progress=None):
  """Writes `<out_dir>/<phone>` (DPED layout, full-size test photos, TFRecords in
  `tfrecords/` with meta["sample"] set); returns a summary with the phone-vs-DSLR PSNR and
  SSIM of the test patches. The phone side is simulated with the `camera` profile (default:
  the one named like `phone`). Deterministic for `seed`. `progress`: a
  `dped_tf.progress.Progress`-like factory to show the photos simulated and the TFRecord
  pairs written."""
  profile = camera_sim.profile_for(phone, camera)
  final = dped_folder.check_output(out_dir, phone, [], overwrite)
  names = [n for split in ("train", "test") for n in PHOTOS[split]]
  photos = {n: load_photo(n) for n in names}
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, f".{phone}.tmp-{os.getpid()}")
  shutil.rmtree(tmp, ignore_errors=True)
  try:
    dped_folder.make_layout(tmp, phone)
    order, test_pairs = [], []
    with progress_lib.start(progress, len(names), "photo", "sample") as bar:
      for split, total in (("train", train_patches), ("test", test_patches)):
        counts = split_counts(total, [photos[n].shape[0] * photos[n].shape[1]
                                      for n in PHOTOS[split]])
        for name, count in zip(PHOTOS[split], counts):
          tag = names.index(name)
          rng = np.random.default_rng([seed, tag])
          view = phone_view(photos[name], profile, int(rng.integers(2**31)))
          patches = random_crops(view, photos[name], count, patch_size, rng)
          dped_folder.save_patches(tmp, phone, split, tag, patches)
          order.append((tag, split, count))
          if split == "test":
            test_pairs += patches
            dped_folder.write_jpeg(os.path.join(dped_folder.full_size_dir(tmp, phone),
                                                f"{os.path.splitext(name)[0]}.jpg"), view)
          bar.update()
    written = dped_folder.number_patches(tmp, phone, order)
    fileio.publish_dir(os.path.join(tmp, phone), final)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  description = f"scikit-image photos + simulated {profile.name} camera, seed {seed}"
  tfrecord_dir = os.path.join(final, "tfrecords")
  tfrecords.convert_dped_folder(out_dir, phone, tfrecord_dir, patch_size, pairs_per_shard,
                                extra_meta={"sample": description}, progress=progress)
  psnr, ssim = patch_metrics(test_pairs)
  return {"phone": phone, "train": written["train"], "test": written["test"],
          "psnr": psnr, "ssim": ssim, "tfrecords": tfrecord_dir, "sample": description}
