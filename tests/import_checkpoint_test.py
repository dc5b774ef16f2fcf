"""`dped-tf import-checkpoint` against a TF1 checkpoint written the authors' way (docs/method.md §1)."""

import numpy as np
import pytest
import tensorflow as tf
from skimage import data as skdata

from dped_tf.testing.authors_graph import authors_generator
from dped_tf.testing.authors_graph import checkpoint_arrays
from dped_tf.testing.authors_graph import session_runner
from dped_tf.testing.authors_graph import write_authors_checkpoint
from dped_tf.testing.models import random_weights_model
from dped_tf import cli
from dped_tf import interop
from dped_tf.modeling.factory import load_generator

# docs/method.md §1, written out: the 40 names of a released generator checkpoint.
CHECKPOINT_NAMES = ({f"generator/W{i}" for i in range(1, 13)} | {f"generator/b{i}" for i in range(1, 13)}
              | {"generator/Variable"} | {f"generator/Variable_{n}" for n in range(1, 16)})


def write_named_checkpoint(prefix, arrays):
  """A TF1 checkpoint holding exactly `arrays` (name -> array)."""
  graph = tf.Graph()
  with graph.as_default():
    var_list = {name: tf.compat.v1.Variable(a) for name, a in arrays.items()}
    saver = tf.compat.v1.train.Saver(var_list=var_list)
    with tf.compat.v1.Session(graph=graph) as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      saver.save(sess, prefix, write_meta_graph=False)


def _spec_arrays():
  arrays = {name: np.zeros(64, np.float32) for name in CHECKPOINT_NAMES}
  for i in range(1, 13):
    k = 9 if i in (1, 12) else 3
    arrays[f"generator/W{i}"] = np.zeros((k, k, 3 if i == 1 else 64, 3 if i == 12 else 64),
                                         np.float32)
  arrays["generator/b12"] = np.zeros(3, np.float32)
  return arrays


def test_layout_read_off_the_generator_is_the_released_one():
  generator = interop.released_generator()
  layout = interop.checkpoint_layout(generator)
  assert layout == {name: a.shape for name, a in _spec_arrays().items()}
  variables = [v for _, v in interop.checkpoint_variables(generator)]
  assert len(variables) == 40 and {id(v) for v in variables} == {
      id(v) for v in generator.weights}


def test_import_matches_the_authors_graph_on_a_photo(tmp_path, capsys):
  image = skdata.chelsea()[100:164, 150:246].astype(np.float32) / 255.0  # 64x96 real photo
  prefix = str(tmp_path / "iphone_orig")
  names, expected = write_authors_checkpoint(prefix, image)
  assert names == CHECKPOINT_NAMES
  assert expected.std() > 0.05  # a non-trivial output, sensitive to every weight

  out = str(tmp_path / "imported.keras")
  assert cli.main(["dped-tf", "import-checkpoint", "--checkpoint", prefix, "--out", out]) == 0
  assert "401,475 parameters" in capsys.readouterr().out
  generator = load_generator(out)
  assert generator.norm == "instance"
  got = generator(image[None], training=False).numpy()[0]
  assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("generator/Variable_15"), "missing 1 (generator/Variable_15)"),
    (lambda a: a.update({"generator/W1": np.zeros((9, 9, 3, 32), np.float32)}),
     "wrong shape (generator/W1 [9, 9, 3, 32] expected [9, 9, 3, 64])"),
    (lambda a: a.update({"discriminator/W1": np.zeros(3, np.float32)}),
     "1 unexpected (discriminator/W1)"),
], ids=["missing", "wrong_shape", "unexpected"])
def test_not_a_generator_checkpoint_is_one_line_naming_the_problem(tmp_path, capsys, change,
                                                                   message):
  arrays = _spec_arrays()
  change(arrays)
  prefix = str(tmp_path / "ckpt")
  write_named_checkpoint(prefix, arrays)
  out = tmp_path / "m.keras"
  assert cli.main(["dped-tf", "import-checkpoint", "--checkpoint", prefix, "--out",
                   str(out)]) == 2
  err = capsys.readouterr().err.strip()
  assert err.count("\n") == 0
  assert "not a DPED generator checkpoint" in err and message in err
  assert not out.exists()


def test_unreadable_checkpoint_and_existing_output_are_refused(tmp_path, capsys):
  out = tmp_path / "m.keras"
  assert cli.main(["dped-tf", "import-checkpoint", "--checkpoint", str(tmp_path / "none"),
                   "--out", str(out)]) == 2
  assert "not a readable TF checkpoint" in capsys.readouterr().err
  out.write_bytes(b"keep")
  assert cli.main(["dped-tf", "import-checkpoint", "--checkpoint", str(tmp_path / "none"),
                   "--out", str(out)]) == 2
  assert "exists" in capsys.readouterr().err and out.read_bytes() == b"keep"


def test_authors_graph_from_a_models_arrays_equals_the_model():
  """The TF1 graph the speed benchmark compares with runs the same function."""
  model = random_weights_model(seed=4)
  image = skdata.chelsea()[40:88, 60:124].astype(np.float32)[None] / 255.0
  expected = model(image).numpy()
  assert expected.std() > 0.05
  got = session_runner(checkpoint_arrays(model), image.shape)(image)
  assert np.abs(got - expected).max() <= 1e-4
