"""The enhance page (`dped-tf serve`): upload a photo, the job queue (`jobs.Enhancing`)
enhances it as `dped-tf enhance` would, the page shows before/after and offers the
download.

Uploads arrive as the raw request body (no multipart spooling into the system's temporary
folder), written straight into the job's folder under the output folder.
"""

import os
import re

from dped_tf import image_io
from dped_tf.errors import DpedError
from dped_tf.web import pages  # first: a one-line error without the web extra
from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route


def safe_name(name, extensions):
  """The uploaded file's base name reduced to letters, digits, ., - and _; DpedError
  unless its extension is one of `extensions`."""
  base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(name.replace("\\", "/")))
  stem, ext = os.path.splitext(base.lstrip("."))
  if ext.lower() not in extensions:
    raise DpedError(f"{name}: not a supported photo type (use {', '.join(extensions)})")
  return (stem or "photo") + ext.lower()


def create_app(enhancing, max_upload_bytes):
  """Starlette app over `enhancing` (a `jobs.Enhancing`): / (the page), PUT
  /upload?name=N (raw body), /jobs/{id}[/file]."""
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
    size = 0
    with open(enhancing.jobs[job_id].upload, "wb") as f:
      async for chunk in request.stream():
        size += len(chunk)
        if size > max_upload_bytes:
          break
        f.write(chunk)
    if size > max_upload_bytes or size == 0:
      enhancing.discard(job_id)
      return refuse(f"{name}: empty upload" if size == 0 else
                    f"{name}: over the {max_upload_bytes // 2**20} MB upload limit", 413)
    enhancing.submit(job_id)
    return JSONResponse({"job": job_id})

  def status(request):
    job = enhancing.jobs.get(request.path_params["job"])
    if job is None:
      return refuse("no such job", 404)
    return JSONResponse({"state": job.state, "error": job.error, "name": job.name,
                         "seconds": job.seconds(), "size": list(job.size),
                         "queued": enhancing.queued()})

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
