"""The pages under load and under attack, over loopback HTTP (issue 22):

- the enhance page against many clients: every upload enhanced or refused with 429, none
  lost or duplicated, memory and disk within their budgets, and everything forgotten
  once the retention time has passed;
- malformed and hostile requests to both servers: each a 4xx, never a 5xx, and the
  server keeps serving.

Every wait waits on a condition (a server answering, a job's state, an empty folder)."""

import collections
import concurrent.futures
import csv
import http.client
import io
import os
import re
import socket
import sqlite3
import time
import urllib.parse

import cv2
import numpy as np
import pytest

from dped_tf import cli
from dped_tf.testing import browser as webtools
from dped_tf.testing.data import write_study_folders
from dped_tf.testing.http_client import Client
from dped_tf.testing.models import random_weights_model

TOKEN = "access-token-of-the-test"
CLIENTS, PHOTOS, MAX_QUEUE = 8, 40, 10
KEEP_MINUTES = 0.1  # 6 s: long enough for a client on a busy machine to fetch its photo
MAX_DISK_MB = 32
MAX_RSS_MB = 2048  # TensorFlow, a small SRCNN and 40 tiny photos
WAIT_S = 240


def wait_for(condition, what, timeout=WAIT_S, every=0.05):
  """`condition()` once truthy, polled every `every` s; fails after `timeout` s."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    value = condition()
    if value:
      return value
    time.sleep(every)
  raise AssertionError(f"timed out waiting for {what}")


def photo_bytes(i):
  """PNG bytes of photo `i`: a size of its own (so the enhanced photo names it)."""
  rng = np.random.default_rng(i)
  pixels = rng.integers(0, 256, (16 + i % 8, 16 + i // 8, 3), np.uint8)
  return cv2.imencode(".png", cv2.GaussianBlur(pixels, (3, 3), 0))[1].tobytes()


@pytest.fixture(scope="module")
def serve_server(tmp_path_factory):
  root = tmp_path_factory.mktemp("serve")
  model = str(root / "srcnn.keras")
  random_weights_model("srcnn").save(model)
  out = root / "out"
  process, url = webtools.start_server(
      "serve", "--model", model, "--out", str(out), "--precision", "float32",
      "--token", TOKEN, "--max_queue", str(MAX_QUEUE), "--keep_minutes", str(KEEP_MINUTES),
      "--max_disk_mb", str(MAX_DISK_MB), "--max_upload", "64")
  yield url, out, process
  webtools.stop(process)


def serve_client(url):
  client = Client(url)
  assert client.request("GET", f"/?token={TOKEN}")[0] == 303  # the token becomes a cookie
  assert client.request("GET", "/")[0] == 200 and client.csrf
  return client


def upload(client, name, data):
  return client.request("PUT", f"/upload?name={urllib.parse.quote(name)}", data,
                        {"X-CSRF-Token": client.csrf})


def test_enhance_queue_under_load(serve_server):
  url, out, process = serve_server
  photos = {i: photo_bytes(i) for i in range(PHOTOS)}
  peak_disk = [0]

  def one_client(k):
    """Uploads its photos back to back, then fetches every accepted one."""
    client, accepted, refused = serve_client(url), {}, []
    for i in range(k, PHOTOS, CLIENTS):
      status, body, headers = upload(client, f"photo{i}.png", photos[i])
      if status == 429:
        assert int(headers["Retry-After"]) >= 1
        refused.append(i)
      else:
        assert status == 200, body
        accepted[i] = urllib.parse.unquote(body.split('"job":')[1].strip(' "}'))
    results = {}
    for i, job in accepted.items():
      def done():
        status, body, _ = client.request("GET", "/stats")
        peak_disk[0] = max(peak_disk[0], int(body.split('"disk_bytes":')[1].strip(" }")))
        return '"state":"done"' in client.request("GET", f"/jobs/{job}")[1]
      wait_for(done, f"photo {i}")
      c = http_get_bytes(client, f"/jobs/{job}/download")
      results[i] = cv2.imdecode(np.frombuffer(c, np.uint8), cv2.IMREAD_COLOR).shape
    return accepted, refused, results

  with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
    outcomes = list(pool.map(one_client, range(CLIENTS)))
  accepted = {i: job for a, _, _ in outcomes for i, job in a.items()}
  refused = [i for _, r, _ in outcomes for i in r]
  results = {i: shape for _, _, r in outcomes for i, shape in r.items()}
  # Every photo enhanced or refused, none both, none lost; each result is its own photo.
  assert sorted(list(accepted) + refused) == list(range(PHOTOS))
  assert len(set(accepted.values())) == len(accepted) and len(accepted) >= MAX_QUEUE
  assert results == {i: (16 + i % 8, 16 + i // 8, 3) for i in accepted}
  with open(f"/proc/{process.pid}/status") as f:
    peak_rss_mb = int(next(l for l in f if l.startswith("VmHWM")).split()[1]) / 1024
  print(f"\n{len(accepted)} enhanced, {len(refused)} refused (429); peak RSS "
        f"{peak_rss_mb:.0f} MB; peak --out {peak_disk[0] / 2**20:.2f} MB")
  assert peak_rss_mb < MAX_RSS_MB and peak_disk[0] < MAX_DISK_MB * 2**20
  # After the retention time: no job folder, an empty job table.
  owner = serve_client(url)
  wait_for(lambda: not os.listdir(out / "jobs"), "the job folders to go")
  wait_for(lambda: '"jobs":0' in owner.request("GET", "/stats")[1], "the job table to empty")
  assert all(owner.request("GET", f"/jobs/{job}")[0] == 404 for job in accepted.values())


def http_get_bytes(client, path):
  """The raw body of a GET (the Client decodes text)."""
  c = http.client.HTTPConnection(client.host, timeout=30)
  try:
    c.request("GET", path, headers={
        "Cookie": "; ".join(f"{k}={v}" for k, v in client.cookies.items())})
    r = c.getresponse()
    assert r.status == 200
    return r.read()
  finally:
    c.close()


def raw(url, data, read=True):
  """Sends `data` as is over a fresh socket; the status of the answer (0: none)."""
  host, port = urllib.parse.urlsplit(url).netloc.split(":")
  with socket.create_connection((host, int(port)), timeout=30) as s:
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    if not read:
      return 0
    answer = b""
    while chunk := s.recv(65536):
      answer += chunk
  return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def hostile_requests(url, client):
  """(what, status) of requests that every server must refuse with a 4xx."""
  cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
  statuses = []

  def check(what, method, path, body=None, headers=None, who=client):
    statuses.append((what, who.request(method, path, body, headers)[0]))

  stranger = Client(url)
  check("no token", "GET", "/", who=stranger)
  check("a wrong token", "GET", "/?token=guess", who=stranger)
  stranger.cookies["dped_token"] = "x" * 5000
  check("a huge token cookie", "GET", "/", who=stranger)
  check("a wrong method", "DELETE", "/")
  check("a wrong method", "PATCH", "/static/style.css")
  for path in ("/static/../access.py", "/static/%2e%2e/access.py", "/static/..%2faccess.py",
               "//etc/passwd", "/jobs/../../etc/passwd", "/jobs/%2e%2e/%2e%2e/x",
               "/" + "a" * 8000, "/static/" + "%00" * 10):
    check(f"path {path[:30]}", "GET", path)
  statuses.append(("a 100 kB header", raw(url, b"GET / HTTP/1.1\r\nHost: x\r\nCookie: "
                                          + cookie.encode() + b"\r\nX-Big: "
                                          + b"a" * 100000 + b"\r\n\r\n")))
  statuses.append(("a broken request line", raw(url, b"GET /\x00 HTTP/1.1\r\n\r\n")))
  statuses.append(("no Host", raw(url, b"GET / HTTP/1.1\r\nCookie: " + cookie.encode()
                                  + b"\r\n\r\n")))
  return statuses


def test_malformed_requests_to_the_enhance_page(serve_server):
  url, _, _ = serve_server
  client = serve_client(url)
  statuses = hostile_requests(url, client)
  csrf = {"X-CSRF-Token": client.csrf}
  for what, name, body, headers in [
      ("no CSRF token", "a.png", photo_bytes(0), {}),
      ("a wrong CSRF token", "a.png", photo_bytes(0), {"X-CSRF-Token": "0" * 32}),
      ("a huge name", "a" * 10000 + ".jpg", b"not an image", csrf),
      ("a name without a photo type", "a.exe", b"MZ", csrf),
      ("a text file named .jpg", "notes.jpg", b"hello, not a photo", csrf)]:
    statuses.append((what, client.request("PUT", f"/upload?name={urllib.parse.quote(name)}",
                                          body, headers)[0]))
  statuses.append(("a wrong method", client.request("POST", "/upload?name=a.png", b"x",
                                                    csrf)[0]))
  cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items()).encode()
  head = (b"PUT /upload?name=a.png HTTP/1.1\r\nHost: x\r\nCookie: " + cookie
          + b"\r\nX-CSRF-Token: " + client.csrf.encode())
  statuses.append(("no Content-Length", raw(url, head + b"\r\nTransfer-Encoding: chunked"
                                            b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")))
  statuses.append(("over the upload limit", raw(url, head + b"\r\nContent-Length: "
                                                + str(65 * 2**20).encode() + b"\r\n\r\n")))
  # A body cut short: the server may have no one left to answer, but keeps nothing.
  raw(url, head + b"\r\nContent-Length: 1000\r\n\r\n" + photo_bytes(2)[:100], read=False)
  bad = [(what, s) for what, s in statuses if not 400 <= s < 500]
  assert not bad, bad
  # 20 MB would pass the 32 MB budget with what the job will write (3x and 1 MB): 507.
  assert raw(url, head + b"\r\nContent-Length: " + str(20 * 2**20).encode()
             + b"\r\n\r\n") == 507
  # The server still serves, and holds no job of any refused request.
  assert client.request("GET", "/")[0] == 200
  wait_for(lambda: '"unfinished":0' in client.request("GET", "/stats")[1],
           "the cut upload to be dropped")
  status, body, _ = upload(client, "fine.png", photo_bytes(3))
  assert status == 200, body


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
  from scipy import stats  # pylint: disable=import-outside-toplevel
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
    cookie = "; ".join(f"{k}={v}" for k, v in rater.cookies.items()).encode()
    statuses.append(("a truncated vote", raw(url, b"POST /vote HTTP/1.1\r\nHost: x\r\n"
                                             b"Cookie: " + cookie + b"\r\nContent-Length: "
                                             b"500\r\n\r\nposition=0&tok")))
    bad = [(what, s) for what, s in statuses if not 400 <= s < 500]
    assert not bad, bad
    assert Client(url).request("GET", f"/?token={TOKEN}")[0] == 303  # still serving
  finally:
    webtools.stop(process)
