"""`dped-tf serve --model M.keras --out DIR`: a local page that enhances uploaded photos.

Each upload goes through `dped-tf enhance`'s per-photo path with the same flags, limits
and one-line errors; everything is written under --out. The page's own limits: a queue of
--max_queue photos (more: 429), finished jobs forgotten after --keep_minutes, --out held
under --max_disk_mb (507). Binding beyond 127.0.0.1 needs --token (or one is generated
and printed).
"""

import os
import tempfile

from absl import flags

from dped_tf.commands import enhance
from dped_tf.configs import RELEASED_HELP
from dped_tf.configs import check_model
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

access = lazy_import("dped_tf.web.access")
pages = lazy_import("dped_tf.web.pages")
app = lazy_import("dped_tf.web.serve.app")
jobs = lazy_import("dped_tf.web.serve.jobs")

USAGE = "--model MODEL"
EXAMPLE = "dped-tf serve --model dped:sony   # then open http://127.0.0.1:8001"
REQUIRED = ("model",)


def define_flags(fv):
  flags.DEFINE_string("model", None, f"Generator: a .keras file {RELEASED_HELP}.",
                      flag_values=fv)
  flags.DEFINE_string("out", "serve_out", "Folder for uploads, results and previews "
                      "(nothing is written elsewhere).", flag_values=fv)
  flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; anything but loopback "
                      "needs --token (generated and printed when not given).", flag_values=fv)
  flags.DEFINE_string("token", None, "Access token every request must carry (open "
                      "/?token=T once; a cookie carries it after).", flag_values=fv)
  flags.DEFINE_integer("port", 8001, "Port to listen on.", lower_bound=1, upper_bound=65535,
                       flag_values=fv)
  flags.DEFINE_integer("max_upload", 256, "Largest upload in MB.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_integer("max_queue", 20, "Most photos uploading, waiting or being enhanced; "
                       "more are refused with 429 and Retry-After.", lower_bound=1,
                       flag_values=fv)
  flags.DEFINE_float("keep_minutes", 60, "A finished photo's files and job are removed this "
                     "long after it finished.", lower_bound=0, flag_values=fv)
  flags.DEFINE_float("max_disk_mb", 4096, "Disk budget of --out in MB: an upload that "
                     "would pass it (with what the queued photos will write) is refused "
                     "with 507.", lower_bound=1, flag_values=fv)
  enhance.define_inference_flags(fv)


def check(fv, argv):
  """The model and the working folder, before TensorFlow loads."""
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  check_model(fv.model)
  if os.path.exists(fv.out) and not os.path.isdir(fv.out):
    raise DpedError(f"{fv.out}: output path exists and is not a folder")


def main(fv, argv):  # pylint: disable=unused-argument  (check read argv)
  pages.templates()  # the web extra is installed
  # This process's temporary files (TensorFlow's autograph sources, activations over
  # budget unless --tmp_dir says otherwise) stay under --out too.
  tempfile.tempdir = os.path.join(fv.out, "tmp")
  os.makedirs(tempfile.tempdir, exist_ok=True)
  token, generated = access.token_for(fv.host, fv.token)
  enhancer, settings = enhance.load_enhancer(fv)
  limits = jobs.Limits(fv.max_queue, fv.keep_minutes * 60, int(fv.max_disk_mb * 2**20))
  enhancing = jobs.Enhancing(fv.out, enhancer, settings, fv.quality, enhance.with_flag_advice,
                             limits)
  pages.run_server(app.create_app(enhancing, fv.max_upload * 2**20, token), fv.host, fv.port,
                   token, generated)
  return 0
