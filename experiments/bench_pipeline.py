"""Input pipeline throughput: decoded 100x100 patch pairs per second from TFRecords (the
training `tf.data` pipeline of dped_tf.dataloaders.tfrecords, batch 50, two sub-steps),
with and without the flip/rotation augmentation. The TFRecords are the embedded sample
dataset, built here. DPED training on one modern GPU needs well over 1,000 pairs/s.
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from dped_tf.dataloaders import sample  # noqa: E402
from dped_tf.dataloaders import tfrecords  # noqa: E402

SECONDS = 10.0  # timed per setting, after a warm-up


def pairs_per_second(tfrecord_dir, augment, batch_size=50):
  ds = tfrecords.make_dataset(tfrecord_dir, "train", batch_size, 100, training=True,
                              augment=augment)
  it = iter(ds)
  for _ in range(5):
    next(it)
  pairs, start = 0, time.perf_counter()
  while time.perf_counter() - start < SECONDS:
    phone, _ = next(it)
    pairs += int(phone.shape[0])
  return pairs / (time.perf_counter() - start)


def main():
  with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    built = sample.build_sample(tmp, "sony")
    print(f"sample dataset (sony, {built['train']} train pairs): built in "
          f"{time.perf_counter() - start:.1f} s")
    print(f"CPU cores: {os.cpu_count()}")
    for augment in (False, True):
      rate = pairs_per_second(built["tfrecords"], augment)
      print(f"training pipeline, augment={augment}: {rate:,.0f} decoded patch pairs/s")


if __name__ == "__main__":
  main()
