"""`dped-tf study` without a browser: the design, the statistics against independent
formulas, and the server's defences (bad votes, path traversal, escaping, SIGKILL)."""

import hashlib
import http.client
import itertools
import math
import os
import re
import signal
import subprocess
import sys
import sqlite3
import urllib.parse

import cv2
import numpy as np
import pytest
from scipy import optimize
from scipy import stats
from dped_tf.testing import browser as webtools

from dped_tf import cli
from dped_tf.testing.data import STUDY_SCENES as SCENES
from dped_tf.testing.data import write_study_folders as make_folders
from dped_tf.web import study

def vote(left, right, winner, scene):
  """A vote row of experiment a-b-c as the store returns it."""
  return {"rater": "r", "experiment": "a-b-c", "scene": scene, "left_class": left,
          "right_class": right, "chosen_side": "left" if winner == left else "right",
          "chosen_class": winner}


def test_plan_shuffles_every_question_once_per_rater(tmp_path):
  s = study.Study.from_folders(make_folders(tmp_path, ("a", "b", "c", "d")),
                               [["a", "b", "c"], ["b", "c", "d"]])
  expected = sorted((e, sc, *sorted(p)) for e, cl in (("a-b-c", "abc"), ("b-c-d", "bcd"))
                    for p in itertools.combinations(cl, 2) for sc in SCENES)
  assert len(expected) == 18
  plans = {r: s.plan(r) for r in ("ann", "bob", "cy")}
  for plan in plans.values():
    assert sorted((q.experiment, q.scene, *sorted((q.left, q.right))) for q in plan) == expected
  assert plans["ann"] == s.plan("ann")  # a returning rater sees the same sequence
  assert len({tuple(p) for p in plans.values()}) == 3
  lefts = [q.left for p in plans.values() for q in p]
  firsts = [min(q.left, q.right) for p in plans.values() for q in p]
  assert 0 < sum(a == b for a, b in zip(lefts, firsts)) < len(lefts)  # both sides occur


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


def test_bradley_terry_against_a_direct_likelihood_maximum():
  classes = ["a", "b", "c"]
  outcomes = ([("a", "b")] * 7 + [("b", "a")] * 3 + [("a", "c")] * 9 + [("c", "a")] * 1
              + [("b", "c")] * 5 + [("c", "b")] * 4)
  got = study.bradley_terry(classes, outcomes)
  wins = np.zeros((3, 3))
  for w, l in outcomes:
    wins[classes.index(w), classes.index(l)] += 1
  wins += 0.5 * (1 - np.eye(3))  # the documented prior: half a win each way per pair

  def negative_log_likelihood(theta):
    s = np.concatenate([[0.0], theta])
    diff = s[:, None] - s[None, :]
    return float(np.sum(wins * np.logaddexp(0.0, -diff)))

  theta = optimize.minimize(negative_log_likelihood, np.zeros(2), method="BFGS",
                            options={"gtol": 1e-10}).x
  p = np.exp(np.concatenate([[0.0], theta]))
  p /= p.sum()
  np.testing.assert_allclose([got[c] for c in classes], p, atol=1e-6)
  # Two classes: the maximum has p_a / p_b = (w_ab + 1/2) / (w_ba + 1/2).
  two = study.bradley_terry(["x", "y"], [("x", "y")] * 6 + [("y", "x")] * 2)
  assert two["x"] / two["y"] == pytest.approx(6.5 / 2.5, rel=1e-9)
  # A class that never wins keeps a finite, smallest score.
  never = study.bradley_terry(classes, [("a", "c"), ("b", "c"), ("a", "b")])
  assert 0 < never["c"] < never["b"] < never["a"]


def test_pair_fractions_are_averaged_over_scenes_with_a_t_interval():
  votes = ([vote("a", "b", "a", "s1")] * 3 + [vote("b", "a", "a", "s2"),
                                                 vote("a", "b", "b", "s2")]
           + [vote("a", "b", "b", "s3")] * 2 + [vote("a", "c", "c", "s1")])
  pairs = {(r.first, r.second): r for r in study.pair_results(votes)}
  ab = pairs[("a", "b")]
  per_scene = [1.0, 0.5, 0.0]  # s1: a 3 of 3, s2: 1 of 2, s3: 0 of 2
  half = stats.t.ppf(0.975, 2) * np.std(per_scene, ddof=1) / math.sqrt(3)
  assert ab.fraction == pytest.approx(0.5) and ab.votes == 7 and ab.scenes == 3
  assert (ab.ci_low, ab.ci_high) == pytest.approx((max(0, 0.5 - half), min(1, 0.5 + half)))
  assert pairs[("a", "c")].fraction == 0.0 and math.isnan(pairs[("a", "c")].ci_low)
  shares = {r.name: (r.share, r.wins, r.votes) for r in study.class_results(votes)}
  assert shares == {"a": (4 / 8, 4, 8), "b": (3 / 8, 3, 8), "c": (1 / 8, 1, 8)}


class Client:
  """A rater over plain HTTP with its own cookie."""

  def __init__(self, url):
    self.host = urllib.parse.urlsplit(url).netloc
    self.cookie = ""

  def request(self, method, path, body=None, headers=None):
    c = http.client.HTTPConnection(self.host, timeout=30)
    headers = dict(headers or {})
    if self.cookie:
      headers["Cookie"] = self.cookie
    if body is not None:
      headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    c.request(method, path, body, headers)
    r = c.getresponse()
    data = r.read()
    cookie = r.getheader("Set-Cookie")
    if cookie:
      self.cookie = cookie.split(";")[0]
    c.close()
    return r.status, data.decode("utf-8", "replace")

  def start(self):
    assert self.request("POST", "/start", "")[0] == 303
    return self.question()

  def question(self):
    page = self.request("GET", "/")[1]
    found = dict(re.findall(r'name="(position|token)" value="([^"]*)"', page))
    return page, found

  def vote(self, side, position, token):
    return self.request("POST", "/vote",
                        urllib.parse.urlencode({"position": position, "token": token,
                                                "side": side}))[0]


def db_state(path):
  """Hashes of the database and its WAL file, and the vote rows."""
  digest = hashlib.sha256()
  for name in (path, path + "-wal"):
    if os.path.exists(name):
      with open(name, "rb") as f:
        digest.update(f.read())
  with sqlite3.connect(path) as db:
    rows = db.execute("SELECT * FROM votes ORDER BY id").fetchall()
  return digest.hexdigest(), rows


@pytest.fixture(scope="module")
def server(tmp_path_factory):
  root = tmp_path_factory.mktemp("study")
  folders = make_folders(str(root))
  with open(root / "secret.png", "wb") as f:
    f.write(b"outside")
  os.symlink(root / "secret.png", os.path.join(folders["dslr"], "leak.png"))
  db = str(root / "votes.sqlite")
  process, url = webtools.start_server(
      "study", "--db", db, *[f"--class_dir={k}={v}" for k, v in folders.items()])
  yield url, db, folders
  webtools.stop(process)


def test_bad_votes_are_refused_without_touching_the_database(server):
  url, db, _ = server
  rater = Client(url)
  _, q = rater.start()
  assert rater.vote("left", q["position"], q["token"]) == 303
  _, q2 = rater.question()
  before = db_state(db)
  stranger = Client(url)
  assert stranger.vote("left", q2["position"], q2["token"]) == 403  # no rater cookie
  assert rater.vote("left", q["position"], q["token"]) == 409  # repeated
  assert rater.vote("left", int(q2["position"]) + 1, q2["token"]) == 409  # not shown yet
  assert rater.vote("left", q2["position"], "0" * 20) == 409  # not the pair shown
  other = Client(url)
  _, q_other = other.start()
  before = db_state(db)
  assert rater.vote("left", q_other["position"], q_other["token"]) == 409  # other's pair
  for body in ["", "position=1", "position=x&token=t&side=left", "position=1&token=t&side=up",
               "position=1&token=t&side=left&side=right", "position=1&token=t&side=left&x=1",
               "%ff%fe", "position=1&token=" + "t" * 2000 + "&side=left"]:
    assert rater.request("POST", "/vote", body)[0] == 400, body
  assert db_state(db) == before
  assert rater.vote("right", q2["position"], q2["token"]) == 303
  assert len(db_state(db)[1]) == len(before[1]) + 1


def test_only_pictures_of_shown_questions_are_served(server):
  url, _, folders = server
  rater = Client(url)
  assert rater.request("GET", "/image/0/left")[0] == 403
  page, q = rater.start()
  status, body = rater.request("GET", f"/image/{q['position']}/left")
  assert status == 200 and body.startswith("\ufffdPNG")
  for path in ["/image/1/left", "/image/0/middle", "/image/-1/left",
               "/image/0/../../secret.png", "/image/0/%2e%2e%2f%2e%2e%2fsecret.png",
               "/static/../study.py", "/static/%2e%2e/study.py", "/static/..%2fstudy.py",
               "/dslr/leak.png", "/" + folders["dslr"] + "/lake.png"]:
    status, body = rater.request("GET", path)
    assert status == 404 and "outside" not in body, path
  # The symlink that leads out of its folder is no scene.
  assert "leak" not in page and len(study.Study.from_folders(folders).scenes) == 3


def test_names_are_escaped_in_the_page(server):
  url, _, _ = server
  rater = Client(url)
  page, q = rater.start()
  seen = set()
  while q:
    scene = re.search(r'<span id="scene">(.*?)</span>', page).group(1)
    seen.add(scene)
    assert rater.vote("left", q["position"], q["token"]) == 303
    page, q = rater.question()
  assert "&lt;b&gt;&amp;&#34;x&#39;" in seen and "<b>" not in page
  assert "Thank you" in page


def test_a_killed_server_loses_no_recorded_vote(tmp_path):
  folders = make_folders(str(tmp_path))
  db = str(tmp_path / "votes.sqlite")
  process, url = webtools.start_server(
      "study", "--db", db, *[f"--class_dir={k}={v}" for k, v in folders.items()])
  try:
    rater, recorded = Client(url), 0
    _, q = rater.start()
    for _ in range(5):
      assert rater.vote("right", q["position"], q["token"]) == 303
      recorded += 1
      _, q = rater.question()
  finally:
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
  with sqlite3.connect(db) as conn:
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = conn.execute("SELECT position, chosen_side FROM votes ORDER BY id").fetchall()
  assert rows == [(i, "right") for i in range(recorded)]


def test_study_commands_do_not_import_tensorflow(tmp_path):
  db = str(tmp_path / "votes.sqlite")
  store = study.VoteStore(db)
  store.add_rater("r")
  for position, (scene, left, right, side) in enumerate(
      [("s1", "a", "b", "left"), ("s1", "b", "c", "left"), ("s2", "c", "a", "right")]):
    store.add_vote("r", position, study.Question("a-b-c", scene, left, right), side)
  code = ("import os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'; from dped_tf import cli; "
          f"assert cli.main(['dped-tf', 'study', '--results', '--db', {db!r}, '--out', "
          f"{str(tmp_path / 'out')!r}]) == 0; cli.main(['dped-tf', 'study', '--help']); "
          "assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
  assert result.returncode == 0, result.stderr
  assert "a-b-c: a won 0.667 of 3 choices" in result.stdout
  with open(tmp_path / "out" / "results.csv") as f:
    assert f.read().splitlines()[1] == "a-b-c,a > b,1.0000,nan,nan,1,1,"
