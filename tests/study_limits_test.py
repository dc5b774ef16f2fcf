"""The study server (`dped-tf study`) under load, SIGKILLs and attack, over loopback HTTP
(issue 22): 20 raters vote at once while the server is killed and restarted twice (every
acknowledged vote in the database once, none twice, integrity ok, the results equal to a
recount from the raw votes), and malformed and hostile requests (each a 4xx, never a 5xx,
and the server keeps serving). Every wait waits on a condition."""

import collections
import concurrent.futures
import csv
import http.client
import io
import re
import sqlite3
import urllib.parse

import numpy as np
from scipy import stats

from dped_tf import cli
from dped_tf.testing import browser as webtools
from dped_tf.testing.data import write_study_folders
from dped_tf.testing.http_client import Client
from dped_tf.testing.http_client import hostile_requests
from dped_tf.testing.http_client import raw
from dped_tf.testing.http_client import wait_for

TOKEN = "access-token-of-the-test"
STUDY_RESULTS_TOKEN = "results-token-of-the-test"
RATERS = 20


class Rater(Client):
  """A rater over HTTP who retries through a server restart: every step repeats until
  the server answers; a vote counts as acknowledged only when its 303 arrived."""

  def answer(self, method, path, body=None):
    def attempt():
      try:
        return self.request(method, path, body)
      except (OSError, http.client.HTTPException):  # the server is down: not yet
        return None
    return wait_for(attempt, f"{method} {path}", every=0.02)

  def rate_all(self, acknowledged):
    self.answer("GET", f"/?token={TOKEN}")
    while True:
      page = self.answer("GET", "/")[1]
      if 'id="start"' in page:
        self.answer("POST", "/start", urllib.parse.urlencode({"csrf": self.csrf}))
        continue
      if 'id="done"' in page:
        return
      fields = dict(re.findall(r'name="(position|token)" value="([^"]*)"', page))
      side = "left" if hash((self.cookies.get("dped_rater"), fields["position"])) % 2 else "right"
      try:
        status = self.request("POST", "/vote", urllib.parse.urlencode({
            "position": fields["position"], "token": fields["token"], "side": side,
            "csrf": self.csrf}))[0]
      except (OSError, http.client.HTTPException):
        continue  # killed meanwhile: recorded or not, the page will tell
      if status == 303:
        acknowledged.append((self.cookies["dped_rater"], int(fields["position"]), side))
      else:
        assert status == 409, status  # a vote recorded before a kill, repeated


def recount(votes):
  """Per (experiment, comparison): the fraction, its 95% t interval over scenes, from raw
  vote rows with numpy and scipy (not the code under test)."""
  rows = {}
  for e in sorted({v["experiment"] for v in votes}):
    classes = e.split("-")
    for i, a in enumerate(classes):
      for b in classes[i + 1:]:
        per_scene = {}
        for v in votes:
          if v["experiment"] == e and {v["left_class"], v["right_class"]} == {a, b}:
            per_scene.setdefault(v["scene"], []).append(v["chosen_class"] == a)
        f = np.array([np.mean(w) for w in per_scene.values()])
        if len(f) > 1:
          half = stats.t.ppf(0.975, len(f) - 1) * f.std(ddof=1) / np.sqrt(len(f))
          low, high = f"{max(0, f.mean() - half):.4f}", f"{min(1, f.mean() + half):.4f}"
        else:
          low = high = "n/a"
        rows[(e, f"{a} > {b}")] = (f"{f.mean():.4f}", low, high)
      mine = [v for v in votes if v["experiment"] == e]
      for c in classes:
        rows[(e, f"{c} (all choices)")] = (
            f"{np.mean([v['chosen_class'] == c for v in mine]):.4f}", "", "")
  return rows


def csv_rows(text):
  return {(r["experiment"], r["comparison"]): (r["fraction"], r["ci_low"], r["ci_high"])
          for r in csv.DictReader(io.StringIO(text))}


def page_rows(page):
  """The same rows read from the results page's tables."""
  rows = {}
  for cells in re.findall(r"<tr><td>(.*?)</tr>", page, re.S):
    cells = re.sub(r"</?td>", "|", cells.replace("&gt;", ">")).split("|")
    cells = [c.strip() for c in cells if c.strip()]
    if ">" in cells[1]:
      interval = ("n/a", "n/a") if cells[3] == "n/a" else tuple(cells[3].split(" – "))
      rows[(cells[0], cells[1])] = (cells[2], *interval)
    else:
      rows[(cells[0], f"{cells[1]} (all choices)")] = (cells[2], "", "")
  return rows


def test_votes_survive_two_kills_under_20_raters(tmp_path):
  folders = write_study_folders(str(tmp_path))
  db = str(tmp_path / "votes.sqlite")
  args = ["study", "--db", db, "--token", TOKEN, "--results_token", STUDY_RESULTS_TOKEN,
          *[f"--class_dir={k}={v}" for k, v in folders.items()]]
  process, url = webtools.start_server(*args)
  port = int(url.rsplit(":", 1)[1])
  owner = Client(url)
  # The printed link: the access token, then the results token, each set as a cookie.
  status, _, headers = owner.request(
      "GET", f"/results?token={TOKEN}&results_token={STUDY_RESULTS_TOKEN}")
  assert status == 303 and headers["Location"] == f"/results?results_token={STUDY_RESULTS_TOKEN}"
  assert owner.request("GET", headers["Location"])[0] == 303
  # One vote: its pair has one scene, so its interval cannot be computed.
  first = Rater(url)
  first.answer("GET", f"/?token={TOKEN}")
  first.answer("GET", "/")
  first.answer("POST", "/start", urllib.parse.urlencode({"csrf": first.csrf}))
  page = first.answer("GET", "/")[1]
  fields = dict(re.findall(r'name="(position|token)" value="([^"]*)"', page))
  assert first.request("POST", "/vote", urllib.parse.urlencode(
      {**fields, "side": "left", "csrf": first.csrf}))[0] == 303
  assert "n/a" in owner.request("GET", "/results")[1]
  acknowledged = [(first.cookies["dped_rater"], 0, "left")]
  total = RATERS * 9 + 1
  try:
    with concurrent.futures.ThreadPoolExecutor(RATERS) as pool:
      raters = [pool.submit(Rater(url).rate_all, acknowledged) for _ in range(RATERS)]
      for fraction in (1 / 3, 2 / 3):
        wait_for(lambda f=fraction: len(acknowledged) >= f * total, "votes", every=0.01)
        process.kill()  # SIGKILL
        process.wait()
        process, _ = webtools.start_server(*args, port=port)
      for rater in raters:
        rater.result()
    csv_text = owner.request("GET", "/results.csv")[1]
    page = owner.request("GET", "/results")[1]
  finally:
    webtools.stop(process)
  with sqlite3.connect(db) as conn:
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.row_factory = sqlite3.Row
    votes = [dict(r) for r in conn.execute("SELECT * FROM votes ORDER BY id")]
  recorded = {(v["rater"], v["position"]): v["chosen_side"] for v in votes}
  assert len(recorded) == len(votes)  # no question answered twice
  assert all(recorded.get((r, p)) == side for r, p, side in acknowledged)
  by_rater = collections.Counter(v["rater"] for v in votes)
  assert len(by_rater) == RATERS + 1 and sorted(by_rater.values())[1:] == [9] * RATERS
  assert len(acknowledged) <= len(votes) <= len(acknowledged) + 2 * RATERS
  print(f"\n{len(votes)} votes in the database, {len(acknowledged)} acknowledged, "
        f"2 SIGKILLs")
  expected = recount(votes)
  assert csv_rows(csv_text) == expected
  assert page_rows(page) == expected
  out = tmp_path / "results"
  assert cli.main(["dped-tf", "study", "--results", "--db", db, "--out", str(out)]) == 0
  with open(out / "results.csv") as f:
    assert csv_rows(f.read()) == expected


def test_malformed_requests_to_the_study(tmp_path):
  folders = write_study_folders(str(tmp_path))
  process, url = webtools.start_server(
      "study", "--db", str(tmp_path / "votes.sqlite"), "--token", TOKEN,
      *[f"--class_dir={k}={v}" for k, v in folders.items()])
  try:
    rater = Rater(url)
    rater.answer("GET", f"/?token={TOKEN}")
    rater.answer("GET", "/")
    statuses = hostile_requests(url, rater)
    form = urllib.parse.urlencode({"csrf": rater.csrf})
    for what, method, path, body in [
        ("a wrong method", "GET", "/vote", None), ("a wrong method", "PUT", "/start", form),
        ("a vote before starting", "POST", "/vote", "position=0&token=t&side=left&csrf=c"),
        ("the raters' results", "GET", "/results", None),
        ("the raters' CSV", "GET", "/results.csv", None),
        ("a start without CSRF", "POST", "/start", ""),
        ("a huge form", "POST", "/start", "csrf=" + "x" * 100000)]:
      statuses.append((what, rater.request(method, path, body)[0]))
    assert rater.request("POST", "/start", form)[0] == 303
    rater.cookies["dped_rater"] = "forged"
    statuses.append(("a forged rater cookie", rater.request("GET", "/image/0/left")[0]))
    rater.cookies["dped_session"] = "%00" * 40
    statuses.append(("a bad session cookie", rater.request("POST", "/start", form)[0]))
    cookie = rater.cookie_header().encode()
    statuses.append(("a truncated vote", raw(url, b"POST /vote HTTP/1.1\r\nHost: x\r\n"
                                             b"Cookie: " + cookie + b"\r\nContent-Length: "
                                             b"500\r\n\r\nposition=0&tok")))
    bad = [(what, s) for what, s in statuses if not 400 <= s < 500]
    assert not bad, bad
    assert Client(url).request("GET", f"/?token={TOKEN}")[0] == 303  # still serving
  finally:
    webtools.stop(process)
