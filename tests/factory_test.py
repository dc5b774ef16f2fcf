"""Making and loading every kind of generator (docs/method.md §1, 6)."""

import ast
import inspect

import numpy as np
import pytest

from dped_tf import configs
from dped_tf.errors import DpedError
from dped_tf.modeling import baselines
from dped_tf.modeling import factory
from dped_tf.modeling import generator
from dped_tf.modeling.baselines import SRCNN
from dped_tf.modeling.discriminator import Discriminator
from dped_tf.modeling.generator import Generator
from dped_tf.testing.models import random_weights_model


def test_the_kinds_are_the_ones_train_offers():
  assert list(factory.KINDS) == list(configs.ARCHITECTURES)


def test_each_network_module_imports_no_other_network_nor_the_factory():
  networks = {m.__name__ for m in (generator, baselines, factory)}
  for module in (generator, baselines):
    imported = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):  # function bodies too
      if isinstance(node, ast.Import):
        imported |= {alias.name for alias in node.names}
      elif isinstance(node, ast.ImportFrom):
        imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    assert not imported & (networks - {module.__name__}), module.__name__


@pytest.mark.parametrize("kind, norm, cls, description", [
    ("dped", "instance", Generator, "a DPED generator with instance norm"),
    ("dped", "batch", Generator, "a DPED generator with batch norm"),
    ("johnson", "instance", Generator, "a DPED generator with instance norm"),
    ("srcnn", "instance", SRCNN, "an SRCNN (middle kernel 1)"),
])
def test_make_generator(kind, norm, cls, description):
  g = factory.make_generator(kind, norm)
  assert type(g) is cls and factory.describe(g) == description
  if cls is Generator:
    assert g.norm == norm


def test_unknown_kind_is_refused():
  with pytest.raises(ValueError,
                     match=r"unknown model 'pix2pix' \(choose from dped, srcnn, johnson\)"):
    factory.make_generator("pix2pix")


def test_save_and_load_generator(tmp_path):
  g = random_weights_model(seed=7)
  x = np.random.default_rng(8).random((1, 20, 24, 3)).astype(np.float32)
  path = str(tmp_path / "g.keras")
  g.save(path)
  loaded = factory.load_generator(path)
  np.testing.assert_allclose(loaded(x).numpy(), g(x).numpy(), atol=1e-6)


def test_load_generator_names_the_problem(tmp_path):
  empty, truncated = tmp_path / "empty.keras", tmp_path / "truncated.keras"
  empty.write_bytes(b"")
  g = random_weights_model(seed=10)
  g.save(str(tmp_path / "g.keras"))
  truncated.write_bytes((tmp_path / "g.keras").read_bytes()[:1000])
  for path in (empty, truncated):
    with pytest.raises(DpedError, match=f"{path.name}: not a .keras model archive"):
      factory.load_generator(str(path))
  with pytest.raises(DpedError, match="model file not found"):
    factory.load_generator(str(tmp_path / "missing.keras"))


def test_load_generator_refuses_another_model(tmp_path):
  d = Discriminator()
  d.build((None, 100, 100, 1))
  path = str(tmp_path / "d.keras")
  d.save(path)
  with pytest.raises(DpedError,
                     match="d.keras: holds a Discriminator, not a dped_tf Generator or SRCNN$"):
    factory.load_generator(path)
  g = random_weights_model("srcnn")
  g.save(str(tmp_path / "s.keras"))
  with pytest.raises(DpedError, match="holds a SRCNN, not a dped_tf Generator$"):
    factory.load_generator(str(tmp_path / "s.keras"), kinds=(Generator,))
  assert isinstance(factory.load_generator(str(tmp_path / "s.keras")), SRCNN)
