"""The enhance page's job queue: every upload is a job that `dped-tf enhance`'s per-photo
path (`enhancement.photo.enhance_file`) runs, one at a time, within the page's limits.

Every file of a job lies under `<out>/jobs/<job>/`: `in/<name>` (the upload), the enhanced
`<name>`, and JPEG previews for the browser. One worker thread enhances the jobs in
turn, so memory stays within the enhance flags' budget. `Limits`: at most `max_queue`
jobs uploading, waiting or running (more: `Refused` 429); a finished job's files and
entry are removed `keep_seconds` after it finished (a sweep thread); a new upload is
refused (507) when the files under --out plus what the admitted jobs will still write
would pass `max_disk_bytes`. Job folders an earlier run left behind are swept like
finished jobs, by their age.
"""

import dataclasses
import math
import os
import queue
import secrets
import shutil
import threading
import time

import cv2
import numpy as np

from dped_tf import fileio
from dped_tf import image_io
from dped_tf.enhancement import photo
from dped_tf.errors import DpedError

PREVIEW_SIDE = 2048
# What a job still writes beside its upload (the enhanced photo, two previews), reserved
# against the disk budget from admission until it finishes: 3x the upload and 1 MB.
OUTPUT_FACTOR = 3
OUTPUT_BYTES = 2**20
UNFINISHED = ("uploading", "queued", "running")


@dataclasses.dataclass
class Limits:
  """The page's bounds (see the module docstring)."""
  max_queue: int = 20
  keep_seconds: float = 3600.0
  max_disk_bytes: int = 2**30


class Refused(DpedError):
  """An upload the limits refuse: HTTP `status` (429, 507), `retry_after` seconds."""

  def __init__(self, message, status, retry_after=None):
    super().__init__(message)
    self.status, self.retry_after = status, retry_after


@dataclasses.dataclass
class Job:
  """One upload: its file name, folder and input path, and how far it got."""
  name: str
  folder: str
  upload: str
  state: str = "uploading"  # uploading, queued, running, done, error
  error: str = ""
  started: float = 0.0
  finished: float = 0.0
  size: tuple = ()
  upload_bytes: int = 0

  def seconds(self):
    """How long the job has run (or ran), to a tenth of a second; 0 while queued."""
    if not self.started:
      return 0
    return round((self.finished or time.time()) - self.started, 1)


class Enhancing:
  """The jobs, the worker thread that runs them through `enhance_file` and the sweep
  thread that forgets them; a job's error is `describe_error(error)` (the command's line,
  with the flag to change)."""

  def __init__(self, out, enhancer, settings, quality, describe_error=str, limits=Limits()):
    self.out, self.enhancer, self.settings, self.quality = out, enhancer, settings, quality
    self.describe_error, self.limits = describe_error, limits
    self.folder = os.path.join(out, "jobs")
    os.makedirs(self.folder, exist_ok=True)
    self.orphans = {os.path.join(self.folder, f): os.path.getmtime(os.path.join(self.folder, f))
                    for f in os.listdir(self.folder)}
    self.jobs, self.queue, self.lock = {}, queue.Queue(), threading.Lock()
    threading.Thread(target=self._work, daemon=True).start()
    threading.Thread(target=self._sweep_every, daemon=True).start()

  def new_job(self, name, upload_bytes):
    """A job for an upload of `upload_bytes` named `name` (already made safe): its
    folders, its id (unguessable); `Refused` when the queue or the disk budget is full."""
    with self.lock:
      unfinished = [j for j in self.jobs.values() if j.state in UNFINISHED]
      if len(unfinished) >= self.limits.max_queue:
        raise Refused(f"{name}: the queue is full ({self.limits.max_queue} photos); "
                      f"try again later", 429, self._retry_after(len(unfinished)))
      reserved = sum(_reserve(j.upload_bytes) for j in unfinished)
      needed = _disk_bytes(self.out) + reserved + upload_bytes + _reserve(upload_bytes)
      if needed > self.limits.max_disk_bytes:
        raise Refused(f"{name}: no room under the {self.limits.max_disk_bytes / 2**20:.0f} "
                      f"MB disk budget of the output folder; try again later", 507)
      job_id = secrets.token_urlsafe(16)
      folder = os.path.join(self.folder, job_id)
      os.makedirs(os.path.join(folder, "in"))
      self.jobs[job_id] = Job(name, folder, os.path.join(folder, "in", name),
                              upload_bytes=upload_bytes)
    return job_id

  def job(self, job_id):
    """The job `job_id` or None."""
    with self.lock:
      return self.jobs.get(job_id)

  def discard(self, job_id):
    """Forgets a job whose upload was refused, and removes its folder."""
    with self.lock:
      shutil.rmtree(self.jobs.pop(job_id).folder)

  def submit(self, job_id):
    """Queues a job whose upload is complete."""
    with self.lock:
      self.jobs[job_id].state = "queued"
    self.queue.put(job_id)

  def queued(self):
    """How many jobs wait for the worker."""
    with self.lock:
      return sum(j.state == "queued" for j in self.jobs.values())

  def stats(self):
    """The job table's size, the unfinished jobs, the bytes under the output folder."""
    with self.lock:
      return {"jobs": len(self.jobs),
              "unfinished": sum(j.state in UNFINISHED for j in self.jobs.values()),
              "disk_bytes": _disk_bytes(self.out)}

  def sweep(self):
    """Removes the jobs (and earlier runs' folders) whose retention has passed."""
    now = time.time()
    with self.lock:
      for job_id in [i for i, j in self.jobs.items()
                     if j.finished and now - j.finished >= self.limits.keep_seconds]:
        shutil.rmtree(self.jobs.pop(job_id).folder, ignore_errors=True)
      for folder in [f for f, t in self.orphans.items() if now - t >= self.limits.keep_seconds]:
        shutil.rmtree(folder, ignore_errors=True)
        del self.orphans[folder]

  def _sweep_every(self):
    interval = min(30.0, max(0.05, self.limits.keep_seconds / 4))
    while True:
      time.sleep(interval)
      self.sweep()

  def _retry_after(self, waiting):
    """Seconds until a slot is likely free: the mean time of the finished jobs (or 5 s)
    times the jobs ahead, from 1 to 600."""
    times = [j.finished - j.started for j in self.jobs.values() if j.finished and j.started]
    each = sum(times) / len(times) if times else 5.0
    return int(min(600, max(1, math.ceil(each * waiting))))

  def _work(self):
    while True:
      job = self.job(self.queue.get())
      job.state, job.started = "running", time.time()
      try:
        _, after = photo.enhance_file(job.upload, os.path.join(job.folder, job.name),
                                     self.enhancer, self.settings, self.quality)
        job.size = after.pixels.shape[1::-1]
        _write_preview(job.folder, "after", after.pixels)
        del after
        # enhance_file released the input before encoding (so serve keeps enhance's
        # memory budget and limits): it is read again for its preview.
        _write_preview(job.folder, "before", image_io.read_photo(job.upload).pixels)
        job.state = "done"
      except DpedError as e:
        job.state, job.error = "error", self.describe_error(e).replace(job.upload, job.name)
      except MemoryError:
        job.state, job.error = "error", f"{job.name}: out of memory (lower --max_memory)"
      except Exception as e:  # pylint: disable=broad-except
        job.state, job.error = "error", f"{job.name}: {type(e).__name__}: {e}".splitlines()[0]
      job.finished = time.time()


def _reserve(upload_bytes):
  return OUTPUT_FACTOR * upload_bytes + OUTPUT_BYTES


def _disk_bytes(folder):
  """Bytes of the files under `folder`."""
  total = 0
  for root, _, names in os.walk(folder):
    for n in names:
      try:
        total += os.lstat(os.path.join(root, n)).st_size
      except OSError:  # removed meanwhile
        pass
  return total


def _write_preview(folder, label, pixels):
  """<folder>/<label>.jpg: the photo at most PREVIEW_SIDE px on its longer side."""
  pixels = image_io.to_depth(pixels, np.uint8)
  scale = PREVIEW_SIDE / max(pixels.shape[:2])
  if scale < 1:
    pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  fileio.atomic_write_bytes(os.path.join(folder, f"{label}.jpg"),
                            image_io.encode_photo(".jpg", image_io.Photo(pixels), 92))
