"""Atomic outputs: a reader never sees a half-written file, model or folder."""

import hashlib
import os
import shutil

from dped_tf.errors import DpedError


def atomic_write_bytes(path, data):
  """Writes `data` to `path` through a temporary file in the same folder and a rename."""
  tmp = os.path.join(os.path.dirname(path) or ".",
                     f".{os.path.basename(path)}.tmp-{os.getpid()}")
  try:
    with open(tmp, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except OSError as e:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise DpedError(f"{path}: cannot write ({e.strerror})") from None


def save_keras_atomic(model, path):
  """`model.save(path)` through a temporary `.keras` file and a rename."""
  tmp = os.path.join(os.path.dirname(path) or ".",
                     f".tmp-{os.getpid()}-{os.path.basename(path)}")
  model.save(tmp)
  os.replace(tmp, path)


def publish_dir(tmp, final):
  """Moves the finished folder `tmp` to `final`, replacing what was there."""
  old = f"{final}.old-{os.getpid()}"
  if os.path.exists(final):
    os.replace(final, old)
  os.replace(tmp, final)
  shutil.rmtree(old, ignore_errors=True)


def file_digest(path):
  """The sha256 of the file at `path`, in hex."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()
