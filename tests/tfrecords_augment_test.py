"""Training augmentation: one random flip + 90-degree rotation, the same for both sides."""

import numpy as np
import tensorflow as tf

from dped_tf.dataloaders import tfrecords


def dihedral(image):
  """The 8 flips/rotations of an [H, W, C] array, as numpy computes them."""
  out = []
  for flipped in (image, image[:, ::-1]):
    out += [np.rot90(flipped, k) for k in range(4)]
  return out


def which(image, original):
  """Index in dihedral(original) of the transform that gives `image`, or None."""
  for i, candidate in enumerate(dihedral(original)):
    if np.allclose(candidate, image, atol=1e-6):
      return i
  return None


def test_augment_pair_applies_one_transform_to_both_sides():
  rng = np.random.default_rng(0)
  phone = rng.random((12, 12, 3)).astype(np.float32)
  dslr = rng.random((12, 12, 3)).astype(np.float32)
  seen = set()
  for s in range(64):
    a, b = tfrecords.augment_pair(tf.constant(phone), tf.constant(dslr),
                                  tf.constant([s, 2 * s + 1], tf.int32))
    i = which(a.numpy(), phone)
    assert i is not None and which(b.numpy(), dslr) == i
    seen.add(i)
  assert seen == set(range(8))


def test_make_dataset_augments_pairs_identically(tiny_dped, tmp_path):
  out = str(tmp_path / "records")
  tfrecords.convert_dped_folder(tiny_dped, "sony", out, patch_size=32)
  plain = list(tfrecords.make_dataset(out, "train", 8, 32, training=False))
  (phones, dslrs), = [(p.numpy(), d.numpy()) for p, d in plain]
  ds = tfrecords.make_dataset(out, "train", 4, 32, training=True, augment=True, seed=1)
  seen = set()
  for phone_batch, dslr_batch in ds.take(8):
    for p, d in zip(phone_batch.numpy(), dslr_batch.numpy()):
      matches = [(k, which(p, phones[k])) for k in range(len(phones))]
      k, i = next((k, i) for k, i in matches if i is not None)
      assert which(d, dslrs[k]) == i
      seen.add(i)
  assert len(seen) >= 5
