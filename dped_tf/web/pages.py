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


def run_server(app, host, port):
  """Serves `app` until interrupted; prints the address first."""
  print(f"serving on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
  uvicorn.run(app, host=host, port=port, log_level="warning")
