"""A local mirror of the authors' released models (`dped_tf.modeling.released`): a checkpoint
in their layout served over HTTP on 127.0.0.1, with the JSON of its sha256 hashes that
`DPED_TF_RELEASES_SHA256` names."""

import contextlib
import functools
import hashlib
import http.server
import json
import os
import socket
import threading

import tensorflow as tf

from dped_tf.testing.authors_graph import checkpoint_arrays


def write_checkpoint(prefix, arrays):
  """A TF1 checkpoint holding exactly `arrays` (name -> array), written as the authors'
  code does (`tf.compat.v1.train.Saver`)."""
  graph = tf.Graph()
  with graph.as_default():
    var_list = {name: tf.compat.v1.Variable(a) for name, a in arrays.items()}
    saver = tf.compat.v1.train.Saver(var_list=var_list)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      saver.save(sess, prefix, write_meta_graph=False)


def write_mirror(root, model, phone="sony"):
  """`root/models_orig/<phone>_orig.*`: an instance-norm `Generator`'s weights as a released
  checkpoint; returns the path of `root/sha256.json` ({file name: sha256} of those files)."""
  folder = os.path.join(root, "models_orig")
  os.makedirs(folder, exist_ok=True)
  write_checkpoint(os.path.join(folder, f"{phone}_orig"), checkpoint_arrays(model))
  hashes = {}
  for suffix in (".index", ".data-00000-of-00001"):
    with open(os.path.join(folder, f"{phone}_orig{suffix}"), "rb") as f:
      hashes[f"{phone}_orig{suffix}"] = hashlib.sha256(f.read()).hexdigest()
  path = os.path.join(root, "sha256.json")
  with open(path, "w") as f:
    json.dump(hashes, f)
  return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
  def log_message(self, format, *args):  # pylint: disable=redefined-builtin
    pass


@contextlib.contextmanager
def serve_folder(root):
  """Serves `root` over HTTP on a free port of 127.0.0.1 in a thread; yields its URL."""
  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=root))
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  try:
    yield f"http://127.0.0.1:{server.server_address[1]}"
  finally:
    server.shutdown()
    server.server_close()
    thread.join()


def refused_url():
  """The URL of a loopback port that was free a moment ago: connecting to it is refused."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  return f"http://127.0.0.1:{port}"
