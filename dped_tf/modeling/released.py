"""The authors' released generators by name: `--model dped:iphone|dped:blackberry|dped:sony`
(docs/method.md §1, "Released weights").

The first use downloads `models_orig/<phone>_orig.index` and `.data-00000-of-00001` from the
authors' repository at a pinned commit with `keras.utils.get_file` (sha256 checked) into
Keras' cache (`$KERAS_HOME`, else `~/.keras`) under `models/dped_tf/`, imports them
(`dped_tf.interop.import_checkpoint`) and saves `<phone>_orig.keras` beside them; later uses
read that `.keras`.

A mirror: `DPED_TF_RELEASES_URL` replaces the base URL (`/models_orig/<file>` is appended).
With it, and only with it, `DPED_TF_RELEASES_SHA256` may name a JSON file of
{file name: sha256} that replaces the pinned hashes (a mirror of other checkpoints, the
tests' local server); what such a mirror gives is cached in a folder of its own
(`models/dped_tf/sha256-<digest of the hashes>/`), never beside the released files.
"""

import hashlib
import json
import os
import socket

import keras

from dped_tf import interop
from dped_tf.configs import DPED_PHONES
from dped_tf.configs import RELEASED_MODELS
from dped_tf.errors import DpedError
from dped_tf.fileio import save_keras_atomic

PREFIX = "dped:"
PHONES = DPED_PHONES
COMMIT = "ebb01315238430f7c66eaaf84996fcb59877f97f"
REPOSITORY = "https://github.com/aiff22/DPED"
RELEASES_URL = f"https://raw.githubusercontent.com/aiff22/DPED/{COMMIT}"
URL_VARIABLE = "DPED_TF_RELEASES_URL"
SHA256_VARIABLE = "DPED_TF_RELEASES_SHA256"
CACHE_SUBDIR = os.path.join("models", "dped_tf")
CHECKPOINT_SUFFIXES = (".index", ".data-00000-of-00001")
TIMEOUT_S = 60  # a network that drops packets: give up after this long without an answer
# The files of models_orig/ at COMMIT (1257 and 1605900 bytes).
SHA256 = {
    "iphone_orig.index":
        "8777e61b30adb8c4e99eb22e5ecca3f80c237e6288dc07c8a3fb7e6fee6865a8",
    "iphone_orig.data-00000-of-00001":
        "9d289d0914ae0f41ded639e6282e6710ebb79ab8dc23865198c2748d7dc083fc",
    "blackberry_orig.index":
        "e907cd7a93831f9138f1706e6d40b997b18ca4b8afc5a6da5f0d3a2aab8aa0e1",
    "blackberry_orig.data-00000-of-00001":
        "ec3332ae3e03d4317fd4c88e3f1885c5df8722f34d4142ec8f77025c8b3add82",
    "sony_orig.index":
        "5e56d778b4e9149883cc00a79e7f4f5dd2e1ee35e64e3419c64b5433b1891574",
    "sony_orig.data-00000-of-00001":
        "6338ab1c409a67c99ad5da416051887a63b576c351d8447741c8d378671e3ab8",
}
NAMES = RELEASED_MODELS


def is_name(model):
  """Whether a `--model` value names a release (`dped:...`) rather than a file."""
  return model.startswith(PREFIX)


def _phone(name):
  phone = name[len(PREFIX):]
  if phone not in PHONES:
    raise DpedError(f"{name}: no such released model (choose from {', '.join(NAMES)})")
  return phone


def _source():
  """(base URL, {file: sha256}, cache folder) from the environment."""
  url = os.environ.get(URL_VARIABLE) or RELEASES_URL
  home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
  folder = os.path.join(os.path.abspath(os.path.expanduser(home)), CACHE_SUBDIR)
  hashes_file = os.environ.get(SHA256_VARIABLE)
  if not hashes_file:
    return url.rstrip("/"), SHA256, folder
  if not os.environ.get(URL_VARIABLE):
    raise DpedError(f"{SHA256_VARIABLE} is set without {URL_VARIABLE} (other hashes are "
                    "only for a mirror)")
  try:
    with open(hashes_file, "rb") as f:
      text = f.read()
    hashes = json.loads(text)
  except (OSError, ValueError) as e:
    raise DpedError(f"{hashes_file}: not a JSON file of sha256 hashes ({SHA256_VARIABLE}): "
                    f"{getattr(e, 'strerror', None) or e}") from None
  if not isinstance(hashes, dict) or not all(
      isinstance(h, str) and len(h) == 64 for h in hashes.values()):
    raise DpedError(f"{hashes_file}: not a JSON object {{file name: sha256 hex digest}} "
                    f"({SHA256_VARIABLE})")
  folder = os.path.join(folder, "sha256-" + hashlib.sha256(text).hexdigest()[:16])
  return url.rstrip("/"), hashes, folder


def cached_file(name):
  """Where the `.keras` of release `name` is cached (whether or not it is yet)."""
  _, _, folder = _source()
  return os.path.join(folder, f"{_phone(name)}_orig.keras")


def _sha256(path):
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def _download(name, url, folder, file, sha256):
  """`keras.utils.get_file` of `url` into `folder` (a cached file with `sha256` is kept);
  DpedError when it cannot be fetched or its sha256 differs (the bad file removed)."""
  target = os.path.join(folder, file)
  timeout = socket.getdefaulttimeout()
  socket.setdefaulttimeout(TIMEOUT_S)  # get_file has no timeout of its own
  try:
    return keras.utils.get_file(file, url, file_hash=sha256, cache_subdir=folder)
  except Exception as e:  # pylint: disable=broad-except  # get_file's network errors
    got = _sha256(target) if os.path.exists(target) else None
    if got is not None and got != sha256:  # get_file leaves a file of another sha256
      os.remove(target)
      raise DpedError(f"{name}: {url} has sha256 {got}, not {sha256}; nothing cached "
                      "(a changed or corrupted download)") from None
    reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    reason = reason.split(f"{url}: ", 1)[-1].removeprefix("None -- ")
    phone = _phone(name)
    raise DpedError(
        f"{name}: cannot download {url} ({reason}); without network: git clone "
        f"{REPOSITORY} && dped-tf import-checkpoint --checkpoint "
        f"DPED/models_orig/{phone}_orig --out {phone}_orig.keras, then --model "
        f"{phone}_orig.keras") from None
  finally:
    socket.setdefaulttimeout(timeout)


def keras_file(name):
  """The cached `.keras` of release `name` (`dped:sony`), downloaded, checked and imported on
  first use; DpedError (one line) for an unknown name, no network or a wrong sha256."""
  phone = _phone(name)
  url, hashes, folder = _source()
  path = os.path.join(folder, f"{phone}_orig.keras")
  if os.path.isfile(path):
    return path
  files = [f"{phone}_orig{suffix}" for suffix in CHECKPOINT_SUFFIXES]
  missing = [file for file in files if file not in hashes]
  if missing:
    raise DpedError(f"{os.environ.get(SHA256_VARIABLE)}: no sha256 for {', '.join(missing)}")
  try:
    os.makedirs(folder, exist_ok=True)
  except OSError as e:
    raise DpedError(f"{folder}: cannot create the model cache ({e.strerror})") from None
  new = [os.path.join(folder, f) for f in files if not os.path.exists(os.path.join(folder, f))]
  try:
    for file in files:
      _download(name, f"{url}/models_orig/{file}", folder, file, hashes[file])
  except DpedError:
    for fetched in new:  # a release is cached whole or not at all
      if os.path.exists(fetched):
        os.remove(fetched)
    raise
  print(f"{name}: importing {os.path.join(folder, phone + '_orig')} into {path}")
  save_keras_atomic(interop.import_checkpoint(os.path.join(folder, f"{phone}_orig")), path)
  return path
