"""`dped-tf serve --model M.keras --out DIR`: a local page that enhances uploaded photos.

Each upload goes through `dped-tf enhance`'s per-photo path with the same flags, limits
and one-line errors; everything is written under --out.
"""

import os
import tempfile

from absl import flags

from dped_tf.commands import enhance
from dped_tf.configs import RELEASED_HELP
from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

pages = lazy_import("dped_tf.web.pages")
app = lazy_import("dped_tf.web.serve.app")
jobs = lazy_import("dped_tf.web.serve.jobs")


def define_flags(fv):
  flags.DEFINE_string("model", None, f"Generator: a .keras file {RELEASED_HELP}.",
                      flag_values=fv)
  flags.DEFINE_string("out", "serve_out", "Folder for uploads, results and previews "
                      "(nothing is written elsewhere).", flag_values=fv)
  flags.DEFINE_string("host", "127.0.0.1", "Address to listen on.", flag_values=fv)
  flags.DEFINE_integer("port", 8001, "Port to listen on.", lower_bound=1, upper_bound=65535,
                       flag_values=fv)
  flags.DEFINE_integer("max_upload", 256, "Largest upload in MB.", lower_bound=1,
                       flag_values=fv)
  enhance.define_inference_flags(fv)
  flags.mark_flag_as_required("model", flag_values=fv)


def main(fv, argv):
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if os.path.exists(fv.out) and not os.path.isdir(fv.out):
    raise DpedError(f"{fv.out}: output path exists and is not a folder")
  pages.templates()  # the web extra is installed
  # This process's temporary files (TensorFlow's autograph sources, activations over
  # budget unless --tmp_dir says otherwise) stay under --out too.
  tempfile.tempdir = os.path.join(fv.out, "tmp")
  os.makedirs(tempfile.tempdir, exist_ok=True)
  enhancer, settings = enhance.load_enhancer(fv)
  enhancing = jobs.Enhancing(fv.out, enhancer, settings, fv.quality, enhance.with_flag_advice)
  pages.run_server(app.create_app(enhancing, fv.max_upload * 2**20), fv.host, fv.port)
  return 0
