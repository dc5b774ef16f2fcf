"""What the study and serve apps share: templates, static files, the server."""

import os

from dped_tf.errors import DpedError

HERE = os.path.dirname(os.path.abspath(__file__))


def templates():
  """Jinja2 templates with HTML autoescaping (file and scene names are escaped)."""
  try:
    from starlette.templating import Jinja2Templates  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise DpedError(f"the web pages need the web extra: pip install 'dped_tf[web]' "
                    f"({e})") from None
  return Jinja2Templates(directory=os.path.join(HERE, "templates"))


def static_mount():
  from starlette.routing import Mount  # pylint: disable=import-outside-toplevel
  from starlette.staticfiles import StaticFiles  # pylint: disable=import-outside-toplevel
  return Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static")


def run_server(app, host, port):
  """Serves `app` until interrupted; prints the address first."""
  import uvicorn  # pylint: disable=import-outside-toplevel
  print(f"serving on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
  uvicorn.run(app, host=host, port=port, log_level="warning")
