"""Progress of long work with a known number of units. On a terminal: one line rewritten
with a carriage return, at most ~10 times a second; elsewhere (a file, a pipe): a plain
line every `DPED_TF_PROGRESS_SECONDS` (default 5) seconds. Always a last line with the
time taken; never an escape code. Library functions take a `progress` factory with the
signature of `Progress` (default None: silent) and open it with `start`."""

import contextlib
import os
import shutil
import sys
import time

ENV = "DPED_TF_PROGRESS_SECONDS"
TTY_REFRESH = 0.1  # seconds between rewrites of the terminal line


def duration(seconds):
  """12.3 s, 4 min 05 s, 2 h 07 min."""
  if seconds < 60:
    return f"{seconds:.1f} s"
  m, s = divmod(int(seconds), 60)
  return f"{m} min {s:02d} s" if m < 60 else f"{m // 60} h {m % 60:02d} min"


def plural(unit, count):
  """photo -> photos, patch -> patches (a count of one: the unit itself)."""
  return unit if count == 1 else unit + ("es" if unit.endswith(("s", "x", "ch")) else "s")


def _interval(stream):
  try:
    if stream.isatty():
      return True, TTY_REFRESH
  except (AttributeError, ValueError):  # no isatty, or closed
    pass
  try:
    return False, float(os.environ.get(ENV, 5))
  except ValueError:
    return False, 5.0


class Progress(contextlib.AbstractContextManager):
  """`total` `unit`s of work named `label`: `update(n)` as they are done, then `close()`
  (or leave a `with` block), which writes `label: N/N units in 12.3 s`."""

  def __init__(self, total, unit="item", label="progress", stream=None, clock=time.monotonic):
    self.total, self.unit, self.label, self.clock = total, unit, label, clock
    self.stream = stream or sys.stdout
    self.tty, self.every = _interval(self.stream)
    self.done, self.closed, self._width = 0, False, 0
    self.start = self._shown = clock()
    if self.tty:
      self._draw(self.line())

  def line(self, final=False):
    """`label: 3/10 units, 4.2 s, ~9.8 s left`; `final`: `label: 10/10 units in 14.0 s`."""
    elapsed = self.clock() - self.start
    done = str(round(self.done)) if abs(self.done - round(self.done)) < 1e-6 else (
        f"{self.done:.1f}")
    text = f"{self.label}: {done}/{self.total} {plural(self.unit, self.total)}"
    if final:
      return f"{text} in {duration(elapsed)}"
    text += f", {duration(elapsed)}"
    if 0 < self.done < self.total:
      text += f", ~{duration(elapsed * (self.total - self.done) / self.done)} left"
    return text

  def update(self, n=1):
    """`n` more units done."""
    self.done += n
    now = self.clock()
    # off a terminal, the last unit's line is the one `close` writes
    if (not self.closed and now - self._shown >= self.every
        and (self.tty or self.total - self.done > 1e-6)):
      self._shown = now
      (self._draw if self.tty else self._print)(self.line())

  def write(self, text, file=None):
    """`print(text, file=file)` (default: this stream) leaving the progress line whole."""
    live = self.tty and not self.closed
    if live:
      self.stream.write("\r" + " " * self._width + "\r")
      self._width = 0
    print(text, file=file or self.stream, flush=True)
    if live:
      self._draw(self.line())

  def close(self, final=True):
    """The last line (with `final`; else, on a terminal, the line ends where it is)."""
    if not self.closed:
      if self.tty:
        self._draw(self.line(final))
        self._print("")
      elif final:
        self._print(self.line(final=True))
      self.closed = True

  def __exit__(self, kind, *_):
    self.close(final=kind is None)

  def share(self, units=1):
    """A factory like `Progress` whose work counts as `units` of this one (a photo's
    tiles in a run of photos); `finish()` it when that part is over."""
    return _Share(self, units)

  def _draw(self, text):
    text = text[:shutil.get_terminal_size().columns - 1]
    self.stream.write("\r" + text.ljust(self._width))
    self.stream.flush()
    self._width = len(text)

  def _print(self, text):
    self.stream.write(text + "\n")
    self.stream.flush()
    self._width = 0


class _Silent(contextlib.AbstractContextManager):
  """What `start` opens without a factory."""

  def update(self, n=1):
    pass

  def close(self, final=True):
    pass

  def __exit__(self, *_):
    self.close()


class _Share(_Silent):
  """`units` of a parent `Progress`, in equal steps over the `total` of a part of it."""

  def __init__(self, parent, units):
    self.parent, self.left, self.step = parent, units, 0.0

  def __call__(self, total, unit=None, label=None):  # pylint: disable=unused-argument
    self.step = self.left / max(total, 1)
    return self

  def update(self, n=1):
    n = min(n * self.step, self.left)
    self.left -= n
    self.parent.update(n)

  def finish(self):
    self.parent.update(self.left)
    self.left = 0


def start(progress, total, unit, label):
  """`progress(total, unit=unit, label=label)`, or a silent stand-in where it is None."""
  return progress(total, unit=unit, label=label) if progress else _Silent()
