"""The enhance page: upload a photo, `dped-tf enhance`'s per-photo path enhances it
(`enhancement.photo.enhance_file`), the page shows before/after and offers the download.

Uploads arrive as the raw request body (no multipart spooling into the system's temporary
folder); every file goes under the output folder: `<out>/<job>/in/<name>`, the enhanced
`<out>/<job>/<name>`, and JPEG previews for the browser. One worker thread enhances the
jobs in turn, so memory stays within the enhance flags' budget.
"""

import dataclasses
import os
import queue
import re
import secrets
import shutil
import threading
import time

from dped_tf.errors import DpedError
from dped_tf.web import pages

PREVIEW_SIDE = 2048


@dataclasses.dataclass
class Job:
  name: str
  folder: str
  upload: str
  state: str = "queued"  # queued, running, done, error
  error: str = ""
  started: float = 0.0
  finished: float = 0.0
  size: tuple = ()


def safe_name(name, extensions):
  """The uploaded file's base name reduced to letters, digits, ., - and _; DpedError
  unless its extension is one of `extensions`."""
  base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(name.replace("\\", "/")))
  stem, ext = os.path.splitext(base.lstrip("."))
  if ext.lower() not in extensions:
    raise DpedError(f"{name}: not a supported photo type (use {', '.join(extensions)})")
  return (stem or "photo") + ext.lower()


class Enhancing:
  """The jobs and the worker thread that runs them through `enhance_file`; a job's
  error is `describe_error(error)` (the command's line, with the flag to change)."""

  def __init__(self, out, enhancer, settings, quality, describe_error=str):
    from dped_tf.enhancement import photo  # pylint: disable=import-outside-toplevel
    self.enhance_file = photo.enhance_file
    self.out, self.enhancer, self.settings, self.quality = out, enhancer, settings, quality
    self.describe_error = describe_error
    self.jobs, self.queue = {}, queue.Queue()
    threading.Thread(target=self._work, daemon=True).start()

  def new_job(self, name):
    job_id = secrets.token_hex(8)
    folder = os.path.join(self.out, job_id)
    os.makedirs(os.path.join(folder, "in"))
    self.jobs[job_id] = Job(name, folder, os.path.join(folder, "in", name))
    return job_id

  def submit(self, job_id):
    self.queue.put(job_id)

  def _work(self):
    # pylint: disable=import-outside-toplevel
    from dped_tf import image_io
    while True:
      job = self.jobs[self.queue.get()]
      job.state, job.started = "running", time.time()
      try:
        _, after = self.enhance_file(job.upload, os.path.join(job.folder, job.name),
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
  # pylint: disable=import-outside-toplevel
  import cv2
  import numpy as np
  from dped_tf import fileio, image_io
  pixels = image_io.to_depth(pixels, np.uint8)
  scale = PREVIEW_SIDE / max(pixels.shape[:2])
  if scale < 1:
    pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
  fileio.atomic_write_bytes(os.path.join(folder, f"{label}.jpg"),
                            image_io.encode_photo(".jpg", image_io.Photo(pixels), 92))


def create_app(enhancing, max_upload_bytes):
  """Starlette app: / (the page), PUT /upload?name=N (raw body), /jobs/{id}[/file]."""
  # pylint: disable=import-outside-toplevel
  from starlette.applications import Starlette
  from starlette.responses import FileResponse, JSONResponse
  from starlette.routing import Route
  from dped_tf import image_io

  templates = pages.templates()

  def index(request):
    return templates.TemplateResponse(request, "serve.html", {
        "extensions": ",".join(image_io.INPUT_EXTENSIONS),
        "max_mb": max_upload_bytes // 2**20})

  def refuse(message, status=400):
    return JSONResponse({"error": message.splitlines()[0]}, status_code=status)

  async def upload(request):
    try:
      name = safe_name(request.query_params.get("name", ""), image_io.INPUT_EXTENSIONS)
    except DpedError as e:
      return refuse(str(e))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_upload_bytes:
      return refuse(f"{name}: {int(declared) / 2**20:.0f} MB is over the "
                    f"{max_upload_bytes // 2**20} MB upload limit", 413)
    job_id = enhancing.new_job(name)
    job, size = enhancing.jobs[job_id], 0
    with open(job.upload, "wb") as f:
      async for chunk in request.stream():
        size += len(chunk)
        if size > max_upload_bytes:
          break
        f.write(chunk)
    if size > max_upload_bytes or size == 0:
      shutil.rmtree(job.folder)
      del enhancing.jobs[job_id]
      return refuse(f"{name}: empty upload" if size == 0 else
                    f"{name}: over the {max_upload_bytes // 2**20} MB upload limit", 413)
    enhancing.submit(job_id)
    return JSONResponse({"job": job_id})

  def status(request):
    job = enhancing.jobs.get(request.path_params["job"])
    if job is None:
      return refuse("no such job", 404)
    now = job.finished or time.time()
    return JSONResponse({"state": job.state, "error": job.error, "name": job.name,
                         "seconds": round(now - job.started, 1) if job.started else 0,
                         "size": list(job.size),
                         "queued": sum(j.state == "queued" for j in enhancing.jobs.values())})

  def file(request):
    job = enhancing.jobs.get(request.path_params["job"])
    which = request.path_params["which"]
    if job is None or job.state != "done" or which not in ("before", "after", "download"):
      return refuse("no such file", 404)
    if which == "download":
      return FileResponse(os.path.join(job.folder, job.name), filename=job.name)
    return FileResponse(os.path.join(job.folder, f"{which}.jpg"))

  return Starlette(routes=[
      Route("/", index), Route("/upload", upload, methods=["PUT"]),
      Route("/jobs/{job}", status), Route("/jobs/{job}/{which}", file), pages.static_mount()])
