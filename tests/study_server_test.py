"""The `dped-tf study` server over plain HTTP: its defences (bad votes, path traversal,
escaping) and a SIGKILL that loses no recorded vote."""

import hashlib
import os
import re
import signal
import sqlite3
import urllib.parse

import pytest

from dped_tf.testing import browser as webtools
from dped_tf.testing.data import write_study_folders as make_folders
from dped_tf.testing.http_client import Client
from dped_tf.web.study import design


RESULTS_TOKEN = "results-token-of-the-test"


class Rater(Client):
  """A rater over plain HTTP with its own cookies and CSRF token."""

  def start(self):
    self.request("GET", "/")
    assert self.request("POST", "/start", urllib.parse.urlencode({"csrf": self.csrf}))[0] == 303
    return self.question()

  def question(self):
    page = self.request("GET", "/")[1]
    found = dict(re.findall(r'name="(position|token)" value="([^"]*)"', page))
    return page, found

  def vote(self, side, position, token):
    return self.request("POST", "/vote", urllib.parse.urlencode({
        "position": position, "token": token, "side": side, "csrf": self.csrf}))[0]


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
      "study", "--db", db, "--results_token", RESULTS_TOKEN,
      *[f"--class_dir={k}={v}" for k, v in folders.items()])
  yield url, db, folders
  webtools.stop(process)


def test_bad_votes_are_refused_without_touching_the_database(server):
  url, db, _ = server
  rater = Rater(url)
  _, q = rater.start()
  assert rater.vote("left", q["position"], q["token"]) == 303
  _, q2 = rater.question()
  before = db_state(db)
  stranger = Rater(url)
  assert stranger.vote("left", q2["position"], q2["token"]) == 403  # no rater cookie
  assert rater.vote("left", q["position"], q["token"]) == 409  # repeated
  assert rater.vote("left", int(q2["position"]) + 1, q2["token"]) == 409  # not shown yet
  assert rater.vote("left", q2["position"], "0" * 20) == 409  # not the pair shown
  other = Rater(url)
  _, q_other = other.start()
  before = db_state(db)
  assert rater.vote("left", q_other["position"], q_other["token"]) == 409  # other's pair
  wrong_csrf = urllib.parse.urlencode({"position": q2["position"], "token": q2["token"],
                                       "side": "left", "csrf": "0" * 32})
  assert rater.request("POST", "/vote", wrong_csrf)[0] == 403
  assert Rater(url).request("POST", "/start", "csrf=" + "0" * 32)[0] == 403
  for body in ["", "position=1", "position=x&token=t&side=left", "position=1&token=t&side=up",
               "position=1&token=t&side=left&side=right", "position=1&token=t&side=left&x=1",
               "%ff%fe", "position=1&token=" + "t" * 2000 + "&side=left"]:
    assert rater.request("POST", "/vote", body)[0] == 400, body
  assert db_state(db) == before
  assert rater.vote("right", q2["position"], q2["token"]) == 303
  assert len(db_state(db)[1]) == len(before[1]) + 1


def test_results_need_the_results_token(server):
  url, _, _ = server
  rater = Rater(url)
  rater.start()
  for path in ("/results", "/results.csv", "/results?results_token=guess",
               "/results.csv?token=" + RESULTS_TOKEN):
    assert rater.request("GET", path)[0] == 403, path
  owner = Client(url)
  status, _, headers = owner.request("GET", "/results?results_token=" + RESULTS_TOKEN)
  assert status == 303 and headers["Location"] == "/results"  # the token leaves the URL
  assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=strict" in headers["Set-Cookie"]
  status, page, _ = owner.request("GET", "/results")
  assert status == 200 and 'id="figure10"' in page
  status, text, headers = owner.request("GET", "/results.csv")
  assert status == 200 and text.startswith("experiment,comparison,fraction")


def test_only_pictures_of_shown_questions_are_served(server):
  url, _, folders = server
  rater = Rater(url)
  assert rater.request("GET", "/image/0/left")[0] == 403
  page, q = rater.start()
  status, body, _ = rater.request("GET", f"/image/{q['position']}/left")
  assert status == 200 and body.startswith("\ufffdPNG")
  for path in ["/image/1/left", "/image/0/middle", "/image/-1/left",
               "/image/0/../../secret.png", "/image/0/%2e%2e%2f%2e%2e%2fsecret.png",
               "/static/../pages.py", "/static/%2e%2e/pages.py", "/static/..%2fpages.py",
               "/dslr/leak.png", "/" + folders["dslr"] + "/lake.png"]:
    status, body, _ = rater.request("GET", path)
    assert status == 404 and "outside" not in body, path
  # The symlink that leads out of its folder is no scene.
  assert "leak" not in page and len(design.Study.from_folders(folders).scenes) == 3


def test_names_are_escaped_in_the_page(server):
  url, _, _ = server
  rater = Rater(url)
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
    rater, recorded = Rater(url), 0
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
