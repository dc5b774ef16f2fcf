"""`dped-tf enhance`: formats, metadata, bad inputs, never clobbering, one-line errors
that name the flag to change."""

import io
import os
import resource
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
from PIL import Image
from PIL import ImageCms
from PIL import ImageOps
import pytest
from skimage import data as skdata

from dped_tf import cli
from dped_tf.enhancement.executor import Enhancer
from dped_tf.modeling.factory import load_generator
from dped_tf.testing.models import random_weights_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("model") / "g.keras")
  random_weights_model().save(path)
  return path


def run(*args):
  return cli.main(["dped-tf", "enhance", *args])


def _png_chunk(kind, body):
  return (struct.pack(">I", len(body)) + kind + body
          + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))


def rgb(height=24, width=32, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3), np.uint8)


def make_inputs(folder):
  """The issue's bad and odd inputs; name -> expected outcome ('ok' or error text)."""
  image = rgb()
  os.makedirs(folder)
  p = lambda name: os.path.join(folder, name)  # noqa: E731
  open(p("empty.jpg"), "wb").close()
  with open(p("text.jpg"), "w") as f:
    f.write("not an image\n")
  buf = io.BytesIO()
  Image.fromarray(rgb(200, 300)).save(buf, "JPEG")
  with open(p("truncated.jpg"), "wb") as f:
    f.write(buf.getvalue()[:len(buf.getvalue()) // 2])
  Image.fromarray(image[..., 0]).save(p("gray.png"))
  Image.fromarray(np.dstack([image, image[..., :1]])).save(p("rgba.png"))
  Image.fromarray(image).convert("CMYK").save(p("cmyk.jpg"), "JPEG", quality=95)
  cv2.imwrite(p("deep.png"), (image.astype(np.uint16) * 257 + 7)[..., ::-1])
  Image.fromarray(image[:1, :1]).save(p("one.png"))
  Image.fromarray(image[:7, :5]).save(p("five_by_seven.png"))
  with open(p("bomb.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 100)) + _png_chunk(b"IEND", b""))
  return {"empty.jpg": "empty file", "text.jpg": "not a readable image",
          "truncated.jpg": "truncated", "bomb.png": "100000x100000",
          "gray.png": "ok", "rgba.png": "ok", "cmyk.jpg": "ok", "deep.png": "ok",
          "one.png": "ok", "five_by_seven.png": "ok"}


def test_bad_inputs_folder_run(model_path, tmp_path, capsys):
  inputs = str(tmp_path / "in")
  expected = make_inputs(inputs)
  out = str(tmp_path / "out")
  assert run(inputs, "--model", model_path, "--out", out, "--precision", "float32") == 1
  err = capsys.readouterr().err.splitlines()
  for name, outcome in expected.items():
    path = os.path.join(inputs, name)
    if outcome == "ok":
      assert os.path.exists(os.path.join(out, name)), name
    else:
      lines = [l for l in err if l.startswith(f"dped-tf enhance: error: {path}: ")]
      assert len(lines) == 1 and outcome in lines[0], (name, err)
      assert not os.path.exists(os.path.join(out, name))
  assert "6 enhanced, 4 failed:" in err
  bomb = [l for l in err if "bomb.png: " in l][0]
  need_mb = -(-10**10 * 18 // 2**20)  # 1e10 pixels x 18 B of PNG buffers
  assert bomb.endswith(f"(photo buffers for .png output: 18 bytes per pixel); raise "
                       f"--max_memory to {need_mb} or more")
  deep = cv2.imread(os.path.join(out, "deep.png"), cv2.IMREAD_UNCHANGED)
  assert deep.dtype == np.uint16 and deep.shape == (24, 32, 3)
  rgba = cv2.imread(os.path.join(out, "rgba.png"), cv2.IMREAD_UNCHANGED)
  np.testing.assert_array_equal(rgba[..., 3], rgb()[..., 0])
  assert cv2.imread(os.path.join(out, "five_by_seven.png")).shape == (7, 5, 3)
  assert cv2.imread(os.path.join(out, "one.png")).shape == (1, 1, 3)


def test_a_full_tile_folder_is_one_line_naming_it(model_path, tmp_path):
  """Maps past the budget go to --tmp_dir; when it has no room (here: a file-size
  limit) the photo fails with one line naming the folder and what each map takes
  there, and leaves no output and no temporary file."""
  src, tiles, out = tmp_path / "big.png", tmp_path / "tiles", tmp_path / "out"
  Image.fromarray(rgb(700, 700)).save(src)
  tiles.mkdir()
  limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))  # noqa: E731
  result = subprocess.run(
      [sys.executable, "-m", "dped_tf.cli", "enhance", str(src), "--model", model_path,
       "--out", str(out), "--mode", "tiled", "--max_memory", "64", "--tile", "128",
       "--tmp_dir", str(tiles), "--precision", "float32"], capture_output=True, text=True,
      preexec_fn=limit, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
  assert result.returncode == 1, result.stderr[-2000:]
  errors = [l for l in result.stderr.splitlines() if l.startswith("dped-tf enhance: error:")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
  # 6 x 6 tiles of 117 x 117, 64 float32 channels: 126 MB per map
  assert errors[0].endswith(
      f"{src}: {tiles}: cannot create a temporary tile file (File too large); each "
      "map of a 700x700 photo takes 0.1 GB there (choose another --tmp_dir)")
  assert not os.listdir(tiles) and not out.joinpath("big.png").exists()


def test_16_bit_png_is_enhanced_at_16_bits(model_path, tmp_path):
  deep = (rgb().astype(np.uint16) * 257 + 100)
  cv2.imwrite(str(tmp_path / "deep.png"), deep[..., ::-1])
  assert run(str(tmp_path / "deep.png"), "--model", model_path, "--out",
             str(tmp_path / "out"), "--precision", "float32") == 0
  got = cv2.imread(str(tmp_path / "out" / "deep.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
  enhancer = Enhancer(load_generator(model_path))
  expected = np.clip(enhancer.whole(deep[None].astype(np.float32) / 65535)[0], 0, 1)
  assert np.abs(got / 65535 - expected).max() < 1e-4  # finer than 8-bit steps (0.004)


def test_orientation_exif_and_icc_are_carried_over(model_path, tmp_path):
  image = rgb(20, 30)
  exif = Image.Exif()
  exif[0x0112] = 6  # the camera was rotated: upright is 90 degrees clockwise
  exif[0x010F] = "TestCam"
  icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  src = tmp_path / "photo.jpg"
  Image.fromarray(image).save(src, "JPEG", quality=98, exif=exif.tobytes(), icc_profile=icc)
  out = tmp_path / "out"
  assert run(str(src), "--model", model_path, "--out", str(out), "--precision", "float32",
             "--side_by_side") == 0
  assert run(str(src), "--model", model_path, "--out", str(out), "--precision", "float32",
             "--ext", "png") == 0
  upright = np.asarray(Image.open(src))[::-1].swapaxes(0, 1)  # rotate 90 degrees clockwise
  enhancer = Enhancer(load_generator(model_path))
  expected = np.clip(enhancer.whole(upright[None].astype(np.float32) / 255)[0], 0, 1) * 255
  for name in ("photo.jpg", "photo.png"):
    with Image.open(out / name) as im:
      assert im.size == (20, 30)
      assert im.getexif()[0x0112] == 1 and im.getexif()[0x010F] == "TestCam"
      assert im.info["icc_profile"] == icc
  with Image.open(out / "photo.png") as im:  # lossless: the pixels are the model's
    assert np.abs(np.asarray(im, np.float32) - expected).max() <= 0.51
  with Image.open(out / "photo_compare.jpg") as im:
    assert im.size == (40, 30)


def test_never_overwrites_inputs_or_outputs(model_path, tmp_path, capsys):
  src = tmp_path / "a.png"
  Image.fromarray(rgb()).save(src)
  original = src.read_bytes()
  assert run(str(src), "--model", model_path, "--out", str(tmp_path)) == 1
  assert "would overwrite the input" in capsys.readouterr().err
  assert src.read_bytes() == original
  out = tmp_path / "out"
  out.mkdir()
  (out / "a.png").write_bytes(b"mine")
  assert run(str(src), "--model", model_path, "--out", str(out)) == 1
  assert "exists (pass --overwrite" in capsys.readouterr().err
  assert (out / "a.png").read_bytes() == b"mine"
  assert run(str(src), "--model", model_path, "--out", str(out), "--overwrite") == 0
  assert Image.open(out / "a.png").size == (32, 24)
  assert [p.name for p in out.iterdir()] == ["a.png"]  # no temporary files left


def test_missing_input_and_unknown_format(model_path, tmp_path, capsys):
  src = tmp_path / "a.png"
  Image.fromarray(rgb()).save(src)
  assert run(str(src), "--model", model_path, "--out", str(tmp_path / "o"), "--ext", "gif") == 2
  assert "unsupported output format 'gif'" in capsys.readouterr().err
  assert run(str(src), str(tmp_path / "nope.jpg"), "--model", model_path, "--out",
             str(tmp_path / "out")) == 1
  err = capsys.readouterr().err
  assert f"{tmp_path / 'nope.jpg'}: no such file" in err
  assert (tmp_path / "out" / "a.png").exists()


def smooth_photo(height=40, width=60):
  """A real photo's crop: lossy HEIC/AVIF round trips stay within a few levels."""
  return np.ascontiguousarray(skdata.astronaut()[40:40 + 4 * height:4, 160:160 + 4 * width:4])


@pytest.mark.parametrize("ext, fmt", [(".heic", "HEIF"), (".avif", "AVIF")])
def test_heic_and_avif_rotated_by_exif_are_enhanced_upright(model_path, tmp_path, ext, fmt):
  exif = Image.Exif()
  exif[0x0112] = 6  # the camera was rotated: upright is 90 degrees clockwise
  exif[0x010F] = "TestCam"
  icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
  src = tmp_path / "in" / f"photo{ext}"
  src.parent.mkdir()
  Image.fromarray(smooth_photo()).save(src, fmt, quality=95, exif=exif.tobytes(),
                                       icc_profile=icc)
  with Image.open(src) as im:  # the library's own reading, made upright by Pillow
    upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
  assert upright.shape == (60, 40, 3)
  out = tmp_path / "out"
  assert run(str(src.parent), "--model", model_path, "--out", str(out), "--precision",
             "float32", "--quality", "100") == 0  # a folder run lists HEIC and AVIF files
  assert run(str(src), "--model", model_path, "--out", str(out), "--precision", "float32",
             "--ext", "png") == 0
  enhancer = Enhancer(load_generator(model_path))
  expected = np.clip(enhancer.whole(upright[None].astype(np.float32) / 255)[0], 0, 1) * 255
  with Image.open(out / "photo.png") as im:  # lossless: the model's pixels
    assert np.abs(np.asarray(im, np.float32) - expected).max() <= 0.51
  with Image.open(out / f"photo{ext}") as im:
    assert im.format == fmt and im.size == (40, 60)
    assert im.getexif().get(0x0112, 1) == 1 and im.getexif()[0x010F] == "TestCam"
    assert im.info["icc_profile"] == icc
    got = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), np.float32)
  # The library's own encoding of the expected pixels at the same quality: lossy (4:2:0
  # chroma), so compared with what the encoder makes of them, not with the pixels.
  buf = io.BytesIO()
  Image.fromarray(np.rint(expected).astype(np.uint8)).save(buf, fmt, quality=100)
  reference = np.asarray(Image.open(buf).convert("RGB"), np.float32)
  assert np.abs(got - reference).mean() < 0.5
  assert np.abs(got - upright).mean() > 10


@pytest.mark.parametrize("damage", ["truncated", "scrambled"])
def test_corrupt_heic_is_one_line(model_path, tmp_path, capsys, damage):
  buf = io.BytesIO()
  Image.fromarray(smooth_photo()).save(buf, "HEIF", quality=90)
  data = buf.getvalue()
  if damage == "truncated":
    data = data[:len(data) // 2]
  else:  # the item boxes after `ftyp` overwritten (HEVC decoders conceal damage in the
    # coded picture itself, as JPEG decoders do: only the container is checkable)
    data = data[:40] + bytes(range(200)) + data[240:]
  src = tmp_path / "bad.heic"
  src.write_bytes(data)
  assert run(str(src), "--model", model_path, "--out", str(tmp_path / "out")) == 1
  lines = [line for line in capsys.readouterr().err.splitlines()
           if line.startswith("dped-tf enhance: error")]
  assert len(lines) == 1 and lines[0].startswith(f"dped-tf enhance: error: {src}: ")
  assert not (tmp_path / "out" / "bad.heic").exists()


def test_unwritable_input_format_gives_jpeg(model_path, tmp_path):
  src = tmp_path / "photo.jfif"  # a JPEG by content; not an output format by its name
  Image.fromarray(smooth_photo()).save(src, "JPEG")
  assert run(str(src), "--model", model_path, "--out", str(tmp_path / "out")) == 0
  with Image.open(tmp_path / "out" / "photo.jpg") as im:
    assert im.format == "JPEG"


@pytest.mark.parametrize("mode", ["whole", "tiled"])
def test_srcnn_model_is_enhanced_like_any_generator(tmp_path, mode):
  model = random_weights_model("srcnn", seed=5)
  path = str(tmp_path / "srcnn.keras")
  model.save(path)
  image = rgb(23, 31, seed=2)
  Image.fromarray(image).save(tmp_path / "a.png")
  assert run(str(tmp_path / "a.png"), "--model", path, "--out", str(tmp_path / "out"),
             "--precision", "float32", "--mode", mode, "--tile", "8") == 0
  got = np.asarray(Image.open(tmp_path / "out" / "a.png"), np.float32)
  expected = np.clip(model(image[None] / np.float32(255)).numpy()[0], 0, 1) * 255
  assert expected.std() > 10
  assert np.abs(got - expected).max() <= 0.51
