"""`dped_tf.lazy.lazy_import`, on small packages written for the test, each case in a fresh
process; and `dped-tf --help` with every command's `--help`, which run no TensorFlow."""

import os
import subprocess
import sys
import textwrap

import pytest

import dped_tf

ROOT = os.path.dirname(os.path.dirname(dped_tf.__file__))

# name -> source; each module appends its name to `ran.names` when its code runs.
MODULES = {
    "ran.py": "names = []\n",
    "heavy.py": "import ran\nran.names.append(__name__)\nVALUE = 42\n",
    "pkg/__init__.py": "import ran\nran.names.append(__name__)\n",
    "pkg/sub.py": "import ran\nran.names.append(__name__)\nVALUE = 7\n",
    # A package whose own code imports and uses its submodule (as dped_tf.modeling does).
    "eager/__init__.py": ("import ran\nran.names.append(__name__)\n"
                          "from eager import sub\nDOUBLE = 2 * sub.VALUE\n"),
    "eager/sub.py": "import ran\nran.names.append(__name__)\nVALUE = 5\n",
    "broken.py": "import ran\nran.names.append(__name__)\nraise RuntimeError('broken')\n",
    "slow.py": "import time, ran\nran.names.append(__name__)\ntime.sleep(0.5)\nVALUE = 1\n",
}


@pytest.fixture
def run(tmp_path):
  """Runs a script in a fresh process that sees the MODULES; returns its stdout."""
  for name, source in MODULES.items():
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text(source)

  def run_script(body):
    script = ("import importlib, importlib.util, sys\nimport ran\n"
              "from dped_tf.lazy import import_now, is_loaded, lazy_import\n"
              + textwrap.dedent(body))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, env={**os.environ,
                                           "PYTHONPATH": os.pathsep.join([str(tmp_path), ROOT])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout
  return run_script


def test_a_lazy_module_runs_once_on_its_first_attribute(run):
  run("""
      heavy = lazy_import("heavy")
      assert sys.modules["heavy"] is heavy and not is_loaded("heavy")
      # What the import system reads does not run it, nor does an import statement.
      assert heavy.__name__ == "heavy" and heavy.__spec__.name == "heavy"
      assert importlib.util.find_spec("heavy") is heavy.__spec__
      import heavy as again
      assert again is heavy and lazy_import("heavy") is heavy and ran.names == []
      assert heavy.VALUE == 42 and ran.names == ["heavy"] and is_loaded("heavy")
      assert heavy.VALUE == 42 and ran.names == ["heavy"]
      """)


def test_a_module_already_imported_comes_back_as_it_is(run):
  run("""
      import heavy
      assert ran.names == ["heavy"] and lazy_import("heavy") is heavy and is_loaded("heavy")
      """)


def test_then_runs_once_right_after_the_module_or_at_once(run):
  run("""
      calls = []
      heavy = lazy_import("heavy", then=lambda: calls.append(("first", list(ran.names))))
      lazy_import("heavy", then=lambda: calls.append("second"))
      assert calls == []
      heavy.VALUE
      heavy.VALUE
      assert calls == [("first", ["heavy"]), "second"]
      lazy_import("heavy", then=lambda: calls.append("after"))
      assert calls[-1] == "after" and len(calls) == 3
      """)


def test_import_now_runs_a_lazy_module(run):
  run("""
      heavy = lazy_import("heavy")
      assert import_now("heavy") is heavy and ran.names == ["heavy"]
      """)


def test_a_submodule_keeps_its_package_lazy_and_runs_it_first(run):
  run("""
      sub = lazy_import("pkg.sub")
      assert not is_loaded("pkg") and ran.names == []
      assert sub.VALUE == 7 and ran.names == ["pkg", "pkg.sub"]
      import pkg
      assert pkg.sub is sub
      """)


def test_a_submodule_of_an_imported_package(run):
  run("""
      import pkg
      sub = lazy_import("pkg.sub")
      assert pkg.sub is sub and ran.names == ["pkg"]
      assert sub.VALUE == 7 and ran.names == ["pkg", "pkg.sub"]
      """)


def test_a_package_that_runs_its_lazy_submodule_itself(run):
  run("""
      sub = lazy_import("eager.sub")
      assert sub.VALUE == 5 and ran.names == ["eager", "eager.sub"]
      assert sys.modules["eager"].DOUBLE == 10
      """)


def test_missing_modules_raise_at_the_call(run):
  run("""
      for name in ("no_such_module", "pkg.no_such_module", "heavy.no_such_module"):
        try:
          lazy_import(name)
        except ModuleNotFoundError:
          continue
        raise AssertionError(name)
      assert ran.names == []
      """)


def test_a_failing_module_raises_on_first_use_and_again_on_import(run):
  run("""
      broken = lazy_import("broken")
      for attempt in ("first use", "import"):
        try:
          broken.anything if attempt == "first use" else importlib.import_module("broken")
        except RuntimeError as e:
          assert str(e) == "broken"
        else:
          raise AssertionError(attempt)
      assert ran.names == ["broken", "broken"] and "broken" not in sys.modules
      """)


def test_threads_see_the_module_only_once_it_has_run(run):
  run("""
      import threading
      slow = lazy_import("slow")
      values = []
      threads = [threading.Thread(target=lambda: values.append(slow.VALUE)) for _ in range(4)]
      for thread in threads:
        thread.start()
      for thread in threads:
        thread.join()
      assert values == [1] * 4 and ran.names == ["slow"]
      """)


def test_help_of_every_command_runs_no_tensorflow_keras_or_beam():
  code = textwrap.dedent("""
      import contextlib, io, sys
      from dped_tf import cli
      from dped_tf.lazy import is_loaded
      with contextlib.redirect_stdout(io.StringIO()) as out:
        assert cli.main(["dped-tf", "--help"]) == 0
        for name in cli.COMMANDS:
          assert cli.main(["dped-tf", name, "--help"]) == 0, name
      assert "import-checkpoint" in out.getvalue() and "--phone" in out.getvalue()
      ran = [m for m in sys.modules
             if m.split(".")[0] in ("tensorflow", "keras", "apache_beam") and is_loaded(m)]
      print(ran)
      """)
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=120, env={**os.environ, "PYTHONPATH": ROOT})
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.strip() == "[]"
