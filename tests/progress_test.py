"""`dped_tf.progress`: one line rewritten with a carriage return on a terminal, plain lines
off it, never an escape code."""

import io
import re

import pytest

from dped_tf import progress
from dped_tf.progress import Progress


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
