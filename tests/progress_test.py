"""`dped_tf.progress` and the progress output of the commands: one line rewritten with a
carriage return on a terminal, plain lines off it, never an escape code."""

import io
import os
import pty
import re
import subprocess
import sys

import cv2
import pytest
from skimage import data as skdata

from dped_tf import progress
from dped_tf.progress import Progress
from dped_tf.testing.data import write_dped_folder
from dped_tf.testing.models import random_weights_model
from dped_tf.testing.photo_pairs import known_homography, synthetic_phone


class Clock:
  """A clock the test moves."""

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class Terminal(io.StringIO):
  def isatty(self):
    return True


def test_off_a_terminal_a_plain_line_every_interval_and_a_final_line(monkeypatch):
  monkeypatch.delenv(progress.ENV, raising=False)
  clock, out = Clock(), io.StringIO()
  with Progress(4, unit="photo", label="enhance", stream=out, clock=clock) as bar:
    for t in (102.0, 104.0, 106.0):  # the default: a line after 5 s
      clock.now = t
      bar.update()
    assert out.getvalue() == "enhance: 3/4 photos, 6.0 s, ~2.0 s left\n"
    clock.now = 108.0
    bar.update()
  assert out.getvalue().splitlines() == ["enhance: 3/4 photos, 6.0 s, ~2.0 s left",
                                         "enhance: 4/4 photos in 8.0 s"]


def test_the_interval_comes_from_the_environment(monkeypatch):
  monkeypatch.setenv(progress.ENV, "0")
  clock, out = Clock(), io.StringIO()
  with Progress(3, unit="patch", label="evaluate", stream=out, clock=clock) as bar:
    for _ in range(3):
      clock.now += 30
      bar.update()
  assert out.getvalue().splitlines() == [
      "evaluate: 1/3 patches, 30.0 s, ~1 min 00 s left",
      "evaluate: 2/3 patches, 1 min 00 s, ~30.0 s left",
      "evaluate: 3/3 patches in 1 min 30 s"]
  assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_on_a_terminal_one_line_rewritten_at_most_ten_times_a_second():
  clock, tty = Clock(), Terminal()
  with Progress(32, unit="tile pass", label="enhance", stream=tty, clock=clock) as bar:
    for _ in range(32):
      clock.now += 1 / 16
      bar.update()
    assert "\n" not in tty.getvalue()
    bar.write("a.jpg -> out/a.jpg")
  text = tty.getvalue()
  assert "\x1b" not in text
  draws = [d.rstrip() for d in text.split("\r")]
  assert draws[:2] == ["", "enhance: 0/32 tile passes, 0.0 s"]
  updates = [d for d in draws if re.fullmatch(r"enhance: \d+/32 tile passes, .*", d)]
  assert len(updates) == 1 + 16 + 1  # the first, every 0.125 s of 2 s, after the write
  assert "enhance: 16/32 tile passes, 1.0 s, ~1.0 s left" in updates
  # A line written meanwhile blanks the progress line, which is then drawn again.
  blank = " " * len("enhance: 32/32 tile passes, 2.0 s")
  assert text.endswith(f"\r{blank}\ra.jpg -> out/a.jpg\n\renhance: 32/32 tile passes, 2.0 s"
                       "\renhance: 32/32 tile passes in 2.0 s\n")


def test_an_error_ends_the_line_without_a_final_line(monkeypatch):
  monkeypatch.setenv(progress.ENV, "0")
  out, tty = io.StringIO(), Terminal()
  for stream in (out, tty):
    with pytest.raises(KeyError):
      with Progress(3, label="x", stream=stream, clock=Clock()) as bar:
        bar.update()
        raise KeyError
  assert out.getvalue() == "x: 1/3 items, 0.0 s, ~0.0 s left\n"
  assert tty.getvalue().endswith("\rx: 1/3 items, 0.0 s, ~0.0 s left\n")


def test_shares_split_a_unit_and_start_without_a_factory_is_silent(monkeypatch):
  monkeypatch.setenv(progress.ENV, "0")
  out = io.StringIO()
  with Progress(2, unit="photo", label="enhance", stream=out, clock=Clock()) as bar:
    for tiles in (4, 3):
      part = bar.share()
      with progress.start(part, tiles, "tile pass", "enhance") as tile_bar:
        tile_bar.update()
      part.finish()
  assert out.getvalue().splitlines()[:2] == ["enhance: 0.2/2 photos, 0.0 s, ~0.0 s left",
                                             "enhance: 1/2 photos, 0.0 s, ~0.0 s left"]
  assert out.getvalue().endswith("enhance: 2/2 photos in 0.0 s\n")
  with progress.start(None, 5, "pair", "test") as silent:
    silent.update(5)


# The commands, off a terminal (pipes) and on one (a pseudo-terminal).

def dped_tf(*args, timeout=300):
  """stdout of `dped-tf ARGS` with pipes for stdout and stderr, a progress line for
  every update; fails on an escape code or a carriage return anywhere."""
  result = subprocess.run(
      [sys.executable, "-m", "dped_tf.cli", *args], capture_output=True, timeout=timeout,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", progress.ENV: "0"}, check=False)
  assert result.returncode == 0, result.stderr.decode()[-3000:]
  for stream in (result.stdout, result.stderr):
    assert b"\x1b" not in stream and b"\r" not in stream, stream.decode()[-3000:]
  return result.stdout.decode()


def assert_lines(out, *patterns):
  for pattern in patterns:
    assert re.search(pattern, out, re.M), (pattern, out[-3000:])


@pytest.fixture(scope="module")
def dped(tmp_path_factory):
  return write_dped_folder(str(tmp_path_factory.mktemp("dped")), train=6, test=3, patch=32)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("model") / "g.keras")
  random_weights_model().save(path)
  return path


def photo(name, width):
  """A scikit-image photo, RGB, scaled to `width` px."""
  image = getattr(skdata, name)()
  height = round(image.shape[0] * width / image.shape[1])
  return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def test_sample_shows_photos_and_pairs(tmp_path):
  out = dped_tf("sample", "--phone", "sony", "--out", str(tmp_path), "--patch_size", "32",
                "--train_patches", "12", "--test_patches", "6")
  assert_lines(out, r"^sample: 1/5 photos, [\d.]+ s, ~[\d.]+ s left$",
               r"^sample: 5/5 photos in [\d.]+ s$", r"^train TFRecords: 6/12 pairs, ",
               r"^train TFRecords: 12/12 pairs in ", r"^test TFRecords: 6/6 pairs in ")


def test_prepare_shows_pairs(dped, tmp_path):
  out = dped_tf("prepare", "--phone", "sony", "--dped_dir", dped, "--patch_size", "32",
                "--out", str(tmp_path / "records"))
  assert_lines(out, r"^train TFRecords: 3/6 pairs, ", r"^train TFRecords: 6/6 pairs in ",
               r"^test TFRecords: 3/3 pairs in ", r"^TFRecords in ")


def test_evaluate_shows_patches(dped, model):
  out = dped_tf("evaluate", "--phone", "sony", "--dped_dir", dped, "--model", model,
                "--batch_size", "2")
  assert_lines(out, r"^evaluate: 2/3 patches, [\d.]+ s, ~[\d.]+ s left$",
               r"^evaluate: 3/3 patches in [\d.]+ s$", r"^phone \(unprocessed\) ")


def test_align_shows_photos(tmp_path):
  for name, width in (("coffee", 400), ("astronaut", 320)):
    dslr = photo(name, width)
    size = (dslr.shape[1] * 7 // 10, dslr.shape[0] * 7 // 10)
    for side, image in (("phone", synthetic_phone(dslr, known_homography(), size)),
                        ("dslr", dslr)):
      os.makedirs(tmp_path / side, exist_ok=True)
      cv2.imwrite(str(tmp_path / side / f"{name}.png"), image[..., ::-1])
  out = dped_tf("align", "--phone_dir", str(tmp_path / "phone"), "--dslr_dir",
                str(tmp_path / "dslr"), "--phone", "sony", "--out", str(tmp_path / "out"),
                "--patch_size", "32", "--test_fraction", "0.5", "--workers", "1")
  assert_lines(out, r"^align: 1/2 photos, [\d.]+ s, ~[\d.]+ s left$",
               r"^align: 2/2 photos in [\d.]+ s$", r"^\d photo pairs aligned, ")


def test_enhance_shows_photos_and_their_tiles(model, tmp_path):
  os.makedirs(tmp_path / "in")
  for name, width in (("coffee", 150), ("chelsea", 120)):
    cv2.imwrite(str(tmp_path / "in" / f"{name}.png"), photo(name, width)[..., ::-1])
  out = dped_tf("enhance", str(tmp_path / "in"), "--model", model, "--out",
                str(tmp_path / "out"), "--mode", "tiled", "--tile", "48",
                "--precision", "float32")
  lines = out.splitlines()
  assert_lines(out, r"^enhance: 0\.\d/2 photos, [\d.]+ s, ~[\d.]+ s left$",
               r"^enhance: 1\.\d/2 photos, ", r"\bchelsea.png -> .* \(120x\d+, float32\)$",
               r"^enhance: 2/2 photos in [\d.]+ s$")
  assert re.fullmatch(r"2 enhanced into .* in [\d.]+ s", lines[-1]), lines[-1]


def test_enhance_on_a_terminal_rewrites_one_line(model, tmp_path):
  src = tmp_path / "cat.png"
  cv2.imwrite(str(src), photo("chelsea", 120)[..., ::-1])
  leader, follower = pty.openpty()
  proc = subprocess.Popen(
      [sys.executable, "-m", "dped_tf.cli", "enhance", str(src), "--model", model, "--out",
       str(tmp_path / "out"), "--mode", "tiled", "--tile", "48", "--precision", "float32"],
      stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "COLUMNS": "120"})
  os.close(follower)
  output = b""
  while True:  # until the child's end of the terminal closes
    try:
      chunk = os.read(leader, 65536)
    except OSError:  # EIO: no process holds the terminal any more
      break
    if not chunk:
      break
    output += chunk
  os.close(leader)
  assert proc.wait(timeout=300) == 0, output.decode()[-3000:]
  text = output.decode()
  assert "\x1b" not in text, text[-3000:]
  total = re.search(r"\renhance: 0/(\d+) tile passes, 0\.0 s", text)
  assert total, text[-3000:]
  total = int(total.group(1))  # 3 x 2 tiles, each once per stage
  assert total % 6 == 0 and total > 6
  between = [int(n) for n in re.findall(r"\renhance: (\d+)/\d+ tile passes, ", text)]
  assert any(0 < n < total for n in between), text[-3000:]
  assert re.search(rf"\renhance: {total}/{total} tile passes in [\d.]+ s *\r\n", text)
  assert re.search(r"\n1 enhanced into .* in [\d.]+ s\r\n$", text), text[-3000:]
