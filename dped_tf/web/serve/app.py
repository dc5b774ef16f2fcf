"""The enhance page (`dped-tf serve`): upload a photo, the job queue (`jobs.Enhancing`)
enhances it as `dped-tf enhance` would, the page shows before/after and offers the
download.

Uploads arrive as the raw request body with its Content-Length (no multipart spooling
into the system's temporary folder), written straight into the job's folder under the
output folder; the page's CSRF token comes along in the X-CSRF-Token header. A body that
is not an image (by its header, whatever its name) is refused before it is queued.
"""

import asyncio
import os
import re
import secrets

from dped_tf import image_io
from dped_tf.errors import DpedError
from dped_tf.web import pages  # first: a one-line error without the web extra
from dped_tf.web import access
from dped_tf.web.serve import jobs
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

# An upload that sends nothing for this long is dropped (its queue slot freed).
CHUNK_TIMEOUT_S = 60


def safe_name(name, extensions):
  """The uploaded file's base name reduced to letters, digits, ., - and _ (at most 100
  characters); DpedError unless its extension is one of `extensions`."""
  base = re.sub(r"[^A-Za-z0-9._-]", "_", os.path.basename(name.replace("\\", "/")))
  stem, ext = os.path.splitext(base.lstrip("."))
  if ext.lower() not in extensions:
    raise DpedError(f"{name[:100]}: not a supported photo type "
                    f"(use {', '.join(extensions)})")
  return (stem[:100] or "photo") + ext.lower()


def create_app(enhancing, max_upload_bytes, token=None):
  """Starlette app over `enhancing` (a `jobs.Enhancing`): / (the page), PUT
  /upload?name=N (raw body), /jobs/{id}[/file], /stats; behind `access.wrap(token)`."""
  templates = pages.templates()
  secret = secrets.token_hex(32)

  def index(request):
    return templates.TemplateResponse(request, "serve.html", {
        "extensions": ",".join(image_io.INPUT_EXTENSIONS),
        "max_mb": max_upload_bytes // 2**20, "csrf": access.csrf_token(request, secret)})

  def refuse(message, status=400, headers=None):
    return JSONResponse({"error": message.splitlines()[0]}, status_code=status,
                        headers=headers)

  async def upload(request):
    if not access.csrf_ok(request, secret, request.headers.get("x-csrf-token")):
      return refuse("no valid CSRF token: reload the page", 403)
    try:
      name = safe_name(request.query_params.get("name", ""), image_io.INPUT_EXTENSIONS)
    except DpedError as e:
      return refuse(str(e))
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or len(declared) > 15:
      return refuse(f"{name}: the upload needs its Content-Length", 411)
    declared = int(declared)
    if declared > max_upload_bytes:
      return refuse(f"{name}: {declared / 2**20:.0f} MB is over the "
                    f"{max_upload_bytes // 2**20} MB upload limit", 413)
    if declared == 0:
      return refuse(f"{name}: empty upload")
    try:
      job_id = enhancing.new_job(name, declared)
    except jobs.Refused as e:
      retry = {"Retry-After": str(e.retry_after)} if e.retry_after else None
      return refuse(str(e), e.status, retry)
    size, stream = 0, request.stream().__aiter__()
    try:
      with open(enhancing.job(job_id).upload, "wb") as f:
        while size <= declared:
          chunk = await asyncio.wait_for(anext(stream, None), CHUNK_TIMEOUT_S)
          if chunk is None:
            break
          size += len(chunk)
          f.write(chunk)
    except (ClientDisconnect, asyncio.TimeoutError):
      enhancing.discard(job_id)
      return refuse(f"{name}: the upload stopped", 400)
    if size != declared:
      enhancing.discard(job_id)
      return refuse(f"{name}: {size} bytes arrived, not the {declared} announced", 400)
    path = enhancing.job(job_id).upload
    try:
      await run_in_threadpool(image_io.image_size, path)
    except DpedError as e:
      enhancing.discard(job_id)
      return refuse(str(e).replace(path, name), 415)
    enhancing.submit(job_id)
    return JSONResponse({"job": job_id})

  def status(request):
    job = enhancing.job(request.path_params["job"])
    if job is None:
      return refuse("no such job", 404)
    return JSONResponse({"state": job.state, "error": job.error, "name": job.name,
                         "seconds": job.seconds(), "size": list(job.size),
                         "queued": enhancing.queued()})

  def file(request):
    job = enhancing.job(request.path_params["job"])
    which = request.path_params["which"]
    if job is None or job.state != "done" or which not in ("before", "after", "download"):
      return refuse("no such file", 404)
    if which == "download":
      return FileResponse(os.path.join(job.folder, job.name), filename=job.name)
    return FileResponse(os.path.join(job.folder, f"{which}.jpg"))

  def stats(request):
    return JSONResponse(enhancing.stats())

  app = Starlette(routes=[
      Route("/", index), Route("/upload", upload, methods=["PUT"]),
      Route("/stats", stats), Route("/jobs/{job}", status), Route("/jobs/{job}/{which}", file),
      pages.static_mount()])
  return access.wrap(app, token)
