"""`import dped_tf, keras` is enough to load every kind of `.keras` file the project
writes, in a fresh process, whichever module was imported first."""

import os
import subprocess
import sys

from dped_tf.testing.models import random_weights_model
import numpy as np
import pytest
from skimage import data as skdata
import tensorflow as tf

from dped_tf.testing.authors_graph import authors_generator
import dped_tf
from dped_tf import cli
from dped_tf import fileio

ROOT = os.path.dirname(os.path.dirname(dped_tf.__file__))

_LOAD = """
import sys
import dped_tf, keras
import numpy as np
image = np.load(sys.argv[1])
for path in sys.argv[2:]:
  model = keras.models.load_model(path, compile=False)
  np.save(path + ".npy", model(image).numpy())
"""


def test_every_saved_kind_loads_in_a_fresh_process(tmp_path, capsys):
  # What `train` (dped with instance or batch norm, johnson, srcnn; the demo trains through
  # it) saves, with its writer, and what `import-checkpoint` writes.
  models = {f"{kind}_{norm}": random_weights_model(kind, norm, seed=i)
            for i, (kind, norm) in enumerate([("dped", "instance"), ("dped", "batch"),
                                              ("srcnn", None)])}
  paths = {}
  for name, model in models.items():
    paths[name] = str(tmp_path / f"{name}.keras")
    fileio.save_keras_atomic(model, paths[name])
  prefix = str(tmp_path / "authors")
  graph = tf.Graph()
  with graph.as_default():
    authors_generator(tf.zeros([1, 8, 8, 3]), np.random.default_rng(2))
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver().save(sess, prefix, write_meta_graph=False)
  paths["imported"] = str(tmp_path / "imported.keras")
  assert cli.main(["dped-tf", "import-checkpoint", "--checkpoint", prefix, "--out",
                   paths["imported"]]) == 0
  capsys.readouterr()
  from dped_tf.modeling.factory import load_generator  # pylint: disable=import-outside-toplevel
  models["imported"] = load_generator(paths["imported"])

  image = skdata.astronaut()[200:232, 180:220].astype(np.float32)[None] / 255
  np.save(tmp_path / "image.npy", image)
  proc = subprocess.run([sys.executable, "-c", _LOAD, str(tmp_path / "image.npy"),
                         *paths.values()], capture_output=True, text=True, check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  for name, model in models.items():
    expected = model(image).numpy()
    assert expected.std() > 0.02, name
    np.testing.assert_allclose(np.load(paths[name] + ".npy"), expected, atol=1e-6,
                               err_msg=name)


@pytest.mark.parametrize("first", [
    ["dped_tf.modeling.generator"],  # Keras runs while dped_tf.modeling is half made
    ["keras", "dped_tf"],
    ["tensorflow", "dped_tf"],
    ["dped_tf.evaluation"],  # Keras runs inside TensorFlow's import
    ["dped_tf.commands.evaluate"],  # dped_tf.modeling is held lazily when Keras runs
])
def test_a_saved_generator_loads_whatever_was_imported_first(tmp_path, first):
  path = str(tmp_path / "generator.keras")
  model = random_weights_model("dped", "instance", seed=3)
  fileio.save_keras_atomic(model, path)
  image = np.random.default_rng(0).random([1, 16, 16, 3], np.float32)
  np.save(tmp_path / "image.npy", image)
  code = "".join(f"import {name}\n" for name in first) + _LOAD
  proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "image.npy"), path],
                        capture_output=True, text=True, check=False, timeout=300,
                        env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 0, proc.stderr[-2000:]
  np.testing.assert_allclose(np.load(path + ".npy"), model(image).numpy(), atol=1e-6)
