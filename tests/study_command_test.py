"""`dped-tf study` as a command: folders that do not make a study are one-line errors
and create no database; `--results` writes the CSV and chart without TensorFlow."""

import os
import subprocess
import sys

from dped_tf import cli
from dped_tf.testing.data import write_study_folders as make_folders
from dped_tf.web.study import design
from dped_tf.web.study import store


def test_folders_that_do_not_match_are_one_line_errors(tmp_path, capsys):
  folders = make_folders(tmp_path)
  os.remove(os.path.join(folders["dslr"], "lake.png"))
  args = ["dped-tf", "study", "--db", str(tmp_path / "s.sqlite")]
  args += [f"--class_dir={k}={v}" for k, v in folders.items()]
  assert cli.main(args) == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert err.endswith("dped/lake.png: no picture of scene 'lake' in every other folder"), err
  assert cli.main(args + ["--experiment", "phone,nope,dslr"]) == 2
  assert "unknown class 'nope'" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "s.sqlite")


def test_study_commands_do_not_import_tensorflow(tmp_path):
  folders = make_folders(str(tmp_path / "classes"))
  db = str(tmp_path / "votes.sqlite")
  votes = store.VoteStore(db)
  votes.add_rater("r")
  for position, (scene, left, right, side) in enumerate(
      [("s1", "a", "b", "left"), ("s1", "b", "c", "left"), ("s2", "c", "a", "right")]):
    votes.add_vote("r", position, design.Question("a-b-c", scene, left, right), side)
  code = ("import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'; from dped_tf import cli; "
          f"assert cli.main(['dped-tf', 'study', '--results', '--db', {db!r}, '--out', "
          f"{str(tmp_path / 'out')!r}]) == 0; cli.main(['dped-tf', 'study', '--help']); "
          "from dped_tf.web.study import app, design, store; "
          f"app.create_app(design.Study.from_folders({folders!r}), store.VoteStore({db!r})); "
          "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
  assert result.returncode == 0, result.stderr
  assert "a-b-c: a won 0.6667 of 3 choices" in result.stdout
  assert "a-b-c: a > b 1.0000 [n/a, n/a] (1 votes, 1 scenes)" in result.stdout
  with open(tmp_path / "out" / "results.csv") as f:
    assert f.read().splitlines()[1] == "a-b-c,a > b,1.0000,n/a,n/a,1,1,"
