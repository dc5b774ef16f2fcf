"""The enhance page's job queue: every upload is a job that `dped-tf enhance`'s per-photo
path (`enhancement.photo.enhance_file`) runs, one at a time.

Every file of a job lies under the output folder: `<out>/<job>/in/<name>` (the upload),
the enhanced `<out>/<job>/<name>`, and JPEG previews for the browser. One worker thread
enhances the jobs in turn, so memory stays within the enhance flags' budget.
"""

import dataclasses
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


@dataclasses.dataclass
class Job:
  """One upload: its file name, folder and input path, and how far it got."""
  name: str
  folder: str
  upload: str
  state: str = "queued"  # queued, running, done, error
  error: str = ""
  started: float = 0.0
  finished: float = 0.0
  size: tuple = ()

  def seconds(self):
    """How long the job has run (or ran), to a tenth of a second; 0 while queued."""
    if not self.started:
      return 0
    return round((self.finished or time.time()) - self.started, 1)


class Enhancing:
  """The jobs and the worker thread that runs them through `enhance_file`; a job's
  error is `describe_error(error)` (the command's line, with the flag to change)."""

  def __init__(self, out, enhancer, settings, quality, describe_error=str):
    self.out, self.enhancer, self.settings, self.quality = out, enhancer, settings, quality
    self.describe_error = describe_error
    self.jobs, self.queue = {}, queue.Queue()
    threading.Thread(target=self._work, daemon=True).start()

  def new_job(self, name):
    """A job for an upload named `name` (already made safe): its folders, its id."""
    job_id = secrets.token_hex(8)
    folder = os.path.join(self.out, job_id)
    os.makedirs(os.path.join(folder, "in"))
    self.jobs[job_id] = Job(name, folder, os.path.join(folder, "in", name))
    return job_id

  def discard(self, job_id):
    """Forgets a job whose upload was refused, and removes its folder."""
    shutil.rmtree(self.jobs.pop(job_id).folder)

  def submit(self, job_id):
    """Queues a job whose upload is complete."""
    self.queue.put(job_id)

  def queued(self):
    """How many jobs wait for the worker."""
    return sum(j.state == "queued" for j in self.jobs.values())

  def _work(self):
    while True:
      job = self.jobs[self.queue.get()]
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


def _write_preview(folder, label, pixels):
  """<folder>/<label>.jpg: the photo at most PREVIEW_SIDE px on its longer side."""
  pixels = image_io.to_depth(pixels, np.uint8)
  scale = PREVIEW_SIDE / max(pixels.shape[:2])
  if scale < 1:
    pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  fileio.atomic_write_bytes(os.path.join(folder, f"{label}.jpg"),
                            image_io.encode_photo(".jpg", image_io.Photo(pixels), 92))
