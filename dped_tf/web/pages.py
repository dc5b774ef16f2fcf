"""What the study and serve apps share: templates, static files, the server. Needs the
web extra; without it, importing this module is the one-line error that says so."""

import os

from dped_tf.errors import DpedError

try:
  import jinja2  # noqa: F401  (Jinja2Templates needs it, and says so only when used)
  from starlette.routing import Mount
  from starlette.staticfiles import StaticFiles
  from starlette.templating import Jinja2Templates
  import uvicorn
except ImportError as e:
  raise DpedError(f"the web pages need the web extra: pip install 'dped_tf[web]' "
                  f"({e})") from None

HERE = os.path.dirname(os.path.abspath(__file__))


def templates():
  """Jinja2 templates with HTML autoescaping (file and scene names are escaped)."""
  return Jinja2Templates(directory=os.path.join(HERE, "templates"))


def static_mount():
  return Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")


def run_server(app, host, port, token=None, generated=False, links=()):
  """Serves `app` until interrupted; prints the address first (with the access token,
  said to be generated when it was) and the `links` ((what, path) pairs)."""
  query = f"?token={token}" if token else ""
  print(f"serving on http://{host}:{port}/{query} (Ctrl-C stops)", flush=True)
  if generated:
    print(f"{host} is not loopback: every request needs the access token {token} "
          f"(generated; give --token to choose it). Put a TLS reverse proxy in front of a "
          f"public address.", flush=True)
  for what, path in links:
    print(f"{what}: http://{host}:{port}{path}", flush=True)
  uvicorn.run(app, host=host, port=port, log_level="warning")
