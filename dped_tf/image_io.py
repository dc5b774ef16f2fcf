"""Photos in and out: 8- and 16-bit RGB, EXIF orientation, EXIF and ICC carried over.

Pillow reads headers and metadata (size before decoding, so a header that claims
100000 x 100000 pixels is refused without allocating) and decodes 8-bit images
(it detects truncated files and converts CMYK, palette, grayscale and alpha modes);
OpenCV decodes 16-bit PNG and TIFF and encodes every output but HEIF and AVIF. EXIF
(orientation reset to 1, since pixels are stored upright) and the ICC profile are spliced
into JPEG (APP1, APP2) and PNG (eXIf, iCCP) outputs. HEIC/HEIF (phones' default) comes
through pillow-heif, which registers itself with Pillow and applies the file's own
rotation (leaving EXIF orientation 1); AVIF through Pillow's own plugin, whose EXIF
orientation is applied here as for JPEG; both are written by Pillow with their EXIF and
ICC. Every problem is a `DpedError` naming the file.
"""

import dataclasses
import io
import os
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

from dped_tf.errors import DpedError

Image.MAX_IMAGE_PIXELS = None  # sizes are checked against the memory budget instead
try:
  import pillow_heif
  pillow_heif.register_heif_opener()
except ImportError:  # a core dependency; without it HEIC files are "not a readable image"
  pass
# Written by Pillow (its own AVIF plugin, pillow-heif's HEIF); the rest by OpenCV.
_PILLOW_FORMATS = {".heic": "HEIF", ".heif": "HEIF", ".avif": "AVIF"}
INPUT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp", ".bmp",
                    *_PILLOW_FORMATS)
OUTPUT_EXTENSIONS = INPUT_EXTENSIONS
_SIXTEEN_BIT = (".png", ".tif", ".tiff")
_ORIENTATION = 0x0112


@dataclasses.dataclass
class Photo:
  """Upright RGB pixels (uint8 or uint16), optional alpha, and metadata to carry."""
  pixels: np.ndarray
  alpha: np.ndarray = None
  exif: bytes = None
  icc: bytes = None


def read_photo(path, size_check=None):
  """Reads `path` upright (EXIF orientation applied). Before decoding, refuses images
  for which `size_check(width, height, channel_bytes)` returns a reason (a string)."""
  with _open(path) as im:
    width, height = im.size
    why = size_check and size_check(width, height, _channel_bytes(im))
    if why:
      raise DpedError(f"{path}: {why}")
    exif = im.getexif()
    orientation = exif.get(_ORIENTATION, 1)
    icc = im.info.get("icc_profile") or None
    # TIFF tags describe the file itself.
    carry_exif = im.format in ("JPEG", "PNG", "WEBP", "HEIF", "AVIF")
    if _opencv_decodes(im):
      pixels, alpha = _decode_opencv(path)
    else:
      pixels, alpha = _decode_pillow(path, im)
  if orientation in range(2, 9):
    pixels = _orient(pixels, orientation)
    alpha = None if alpha is None else _orient(alpha, orientation)
  if _ORIENTATION in exif:
    exif[_ORIENTATION] = 1
  return Photo(pixels, alpha, exif.tobytes() if carry_exif and len(exif) else None, icc)


def image_size(path):
  """(width, height) from `path`'s header, nothing decoded; DpedError when `path` is not
  a readable image (what `read_photo` would say)."""
  with _open(path) as im:
    return im.size


def _open(path):
  _check_readable(path)
  try:
    return Image.open(path)
  except Exception as e:
    raise DpedError(f"{path}: not a readable image ({_first_line(e)})") from None


def read_rgb8(path):
  """The upright uint8 RGB pixels of `path` (16-bit images rescaled; alpha and metadata
  dropped): what alignment, the sample dataset and the experiments compare."""
  return to_depth(read_photo(path).pixels, np.uint8)


def _check_readable(path):
  try:
    size = os.path.getsize(path)
  except OSError as e:
    raise DpedError(f"{path}: cannot read ({e.strerror})") from None
  if size == 0:
    raise DpedError(f"{path}: empty file")


def _first_line(e):
  return (str(e).splitlines() or [type(e).__name__])[0]


def _opencv_decodes(im):
  """16-bit PNG and TIFF (Pillow would reduce 16-bit RGB to 8 bits)."""
  if im.format == "PNG":
    with open(im.filename, "rb") as f:
      head = f.read(25)
    return len(head) == 25 and head[24] == 16
  return im.format == "TIFF"


def _channel_bytes(im):
  """Bytes per decoded channel, from the header: 2 for 16-bit PNG and TIFF, else 1."""
  if im.format == "TIFF":
    bits = im.tag_v2.get(258, (8,))
    return 2 if max(bits if isinstance(bits, tuple) else (bits,)) > 8 else 1
  return 2 if _opencv_decodes(im) else 1


def _decode_pillow(path, im):
  try:
    im.load()
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        im.mode == "P" and "transparency" in im.info)
    # no converted copy when the mode already fits (the memory budget counts on it)
    if has_alpha:
      rgba = np.asarray(im if im.mode == "RGBA" else im.convert("RGBA"))
      return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.asarray(im if im.mode == "RGB" else im.convert("RGB")), None
  except Exception as e:  # truncated data, broken codec streams
    raise DpedError(f"{path}: corrupt or truncated image ({_first_line(e)})") from None


def _decode_opencv(path):
  try:
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
  except cv2.error as e:
    raise DpedError(f"{path}: corrupt or truncated image ({_first_line(e)})") from None
  if image is None:
    raise DpedError(f"{path}: corrupt or truncated image")
  if image.ndim == 2:
    return np.repeat(image[..., None], 3, axis=2), None
  if image.shape[2] == 4:
    return np.ascontiguousarray(image[..., 2::-1]), np.ascontiguousarray(image[..., 3])
  return np.ascontiguousarray(image[..., 2::-1]), None


def _orient(a, orientation):
  """Applies EXIF orientation 2..8 (the transform that makes the image upright)."""
  ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
         5: lambda a: a.swapaxes(0, 1), 6: lambda a: np.rot90(a, -1),
         7: lambda a: np.rot90(a, 2).swapaxes(0, 1), 8: lambda a: np.rot90(a, 1)}
  return np.ascontiguousarray(ops[orientation](a))


def output_depth(ext, pixels_dtype):
  """uint16 where the input had 16 bits and the output format holds them, else uint8."""
  return np.uint16 if pixels_dtype == np.uint16 and ext.lower() in _SIXTEEN_BIT else np.uint8


def to_depth(pixels, dtype):
  """Rescales uint8/uint16 pixels to `dtype`."""
  if pixels.dtype == dtype:
    return pixels
  if dtype == np.uint8:
    return np.rint(pixels.astype(np.float32) / 257.0).astype(np.uint8)
  return pixels.astype(np.uint16) * 257


def output_extension(path, ext=None):
  """The output format for input `path`: `ext` if given, else the input's own where it can
  be written, else JPEG."""
  if ext:
    return "." + ext.lstrip(".").lower()
  own = os.path.splitext(path)[1].lower()
  return own if own in OUTPUT_EXTENSIONS else ".jpg"


def encode_photo(ext, photo, quality=95):
  """Encoded bytes of `photo` in the format of `ext`, with its EXIF and ICC where the
  format allows (JPEG, PNG, HEIF, AVIF)."""
  ext = ext.lower()
  if ext not in OUTPUT_EXTENSIONS:
    raise DpedError(f"unsupported output format {ext!r} (use {', '.join(OUTPUT_EXTENSIONS)})")
  if ext in _PILLOW_FORMATS:
    return _encode_pillow(_PILLOW_FORMATS[ext], photo, quality)
  bgr = photo.pixels[..., ::-1]
  if photo.alpha is not None and ext in (".png", ".tif", ".tiff", ".webp"):
    bgr = np.dstack([bgr, to_depth(photo.alpha, photo.pixels.dtype)])
  params = {".jpg": [cv2.IMWRITE_JPEG_QUALITY, quality],
            ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
            ".webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(ext, [])
  ok, data = cv2.imencode(ext, np.ascontiguousarray(bgr), params)
  if not ok:
    raise DpedError(f"OpenCV could not encode a {ext} image")
  data = data.tobytes()
  if ext in (".jpg", ".jpeg"):
    return _jpeg_with_metadata(data, photo.exif, photo.icc)
  if ext == ".png":
    return _png_with_metadata(data, photo.exif, photo.icc)
  return data


def _encode_pillow(fmt, photo, quality):
  pixels = to_depth(photo.pixels, np.uint8)
  if photo.alpha is not None:
    pixels = np.dstack([pixels, to_depth(photo.alpha, np.uint8)])
  metadata = {k: v for k, v in (("exif", photo.exif), ("icc_profile", photo.icc)) if v}
  buf = io.BytesIO()
  try:
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format=fmt, quality=quality,
                                                       **metadata)
  except (KeyError, OSError, ValueError) as e:  # no encoder for the format
    raise DpedError(f"Pillow could not encode a {fmt} image ({_first_line(e)})") from None
  return buf.getvalue()


def _jpeg_with_metadata(data, exif, icc):
  segments = []
  if exif and len(exif) <= 65533:
    segments.append(b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif)
  if icc:
    chunks = [icc[i:i + 65519] for i in range(0, len(icc), 65519)]
    for i, chunk in enumerate(chunks[:255]):
      body = b"ICC_PROFILE\0" + bytes([i + 1, len(chunks)]) + chunk
      segments.append(b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body)
  at = 2  # after SOI, and after OpenCV's JFIF APP0 so that it stays first
  if data[2:4] == b"\xff\xe0":
    at = 4 + struct.unpack(">H", data[4:6])[0]
  return data[:at] + b"".join(segments) + data[at:]


def _png_chunk(kind, body):
  return struct.pack(">I", len(body)) + kind + body + struct.pack(
      ">I", zlib.crc32(kind + body) & 0xffffffff)


def _png_with_metadata(data, exif, icc):
  chunks = b""
  if icc:
    chunks += _png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(icc))
  if exif:
    chunks += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif)
  at = 8 + 25  # signature + IHDR
  return data[:at] + chunks + data[at:]
