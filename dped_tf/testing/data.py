"""Small datasets made on the spot from a real photo (scikit-image's astronaut)."""

import os

import cv2
import numpy as np
from skimage import data as skdata

from dped_tf.dataloaders import tfrecords


def write_dped_folder(root, phone="sony", train=8, test=4, patch=32, seed=0):
  """DPED layout with `train`/`test` aligned pairs of `patch`-px JPEGs cut from
  scikit-image's astronaut photo; the phone side darker and noisier. Returns `root`."""
  rng = np.random.default_rng(seed)
  photo = skdata.astronaut()[..., ::-1]  # BGR for OpenCV
  for split, count in (("train", train), ("test", test)):
    base = (os.path.join(root, phone, "training_data") if split == "train"
            else os.path.join(root, phone, "test_data", "patches"))
    for side in (phone, "canon"):
      os.makedirs(os.path.join(base, side), exist_ok=True)
    for i in range(count):
      y, x = rng.integers(0, photo.shape[0] - patch, 2)
      dslr = photo[y:y + patch, x:x + patch]
      noisy = dslr * 0.8 + rng.normal(0, 6, dslr.shape)
      cv2.imwrite(os.path.join(base, "canon", f"{i}.jpg"), dslr)
      cv2.imwrite(os.path.join(base, phone, f"{i}.jpg"), np.clip(noisy, 0, 255).astype(np.uint8))
  os.makedirs(os.path.join(root, phone, "test_data", "full_size_test_images"), exist_ok=True)
  return root


def write_tiny_records(root, train, test, patch=32, pairs_per_shard=2000):
  """A tiny DPED folder (`write_dped_folder`) under `root` converted to TFRecords;
  returns their folder."""
  write_dped_folder(root, train=train, test=test, patch=patch)
  out = os.path.join(root, "sony", "tfrecords")
  tfrecords.convert_dped_folder(root, "sony", out, patch, pairs_per_shard=pairs_per_shard)
  return out


STUDY_SCENES = ("<b>&\"x'", "lake", "tree")


def write_study_folders(root, classes=("phone", "dped", "dslr"), scenes=STUDY_SCENES):
  """One folder per class for `dped-tf study`; every picture of class i is a flat gray of
  40 * (i + 1). Returns {class: folder}."""
  folders = {}
  for i, name in enumerate(classes):
    folders[name] = os.path.join(root, name)
    os.makedirs(folders[name], exist_ok=True)
    for scene in scenes:
      cv2.imwrite(os.path.join(folders[name], scene + ".png"),
                  np.full((12, 16, 3), 40 * (i + 1), np.uint8))
  return folders
