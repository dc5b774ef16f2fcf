"""The enhance page (`dped-tf serve`) under load and under attack, over loopback HTTP
(issue 22): many clients against a small queue (every upload enhanced or refused with
429, none lost or duplicated, memory and disk within their budgets, everything forgotten
once the retention time has passed), and malformed and hostile requests (each a 4xx,
never a 5xx, and the server keeps serving). Every wait waits on a condition."""

import concurrent.futures
import os
import urllib.parse

import cv2
import numpy as np
import pytest

from dped_tf.testing import browser as webtools
from dped_tf.testing.http_client import Client
from dped_tf.testing.http_client import hostile_requests
from dped_tf.testing.http_client import raw
from dped_tf.testing.http_client import wait_for
from dped_tf.testing.models import random_weights_model

TOKEN = "access-token-of-the-test"
CLIENTS, PHOTOS, MAX_QUEUE = 8, 40, 10
KEEP_MINUTES = 0.1  # 6 s: long enough for a client on a busy machine to fetch its photo
MAX_DISK_MB = 32
MAX_RSS_MB = 2048  # TensorFlow, a small SRCNN and 40 tiny photos


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
      c = client.get_bytes(f"/jobs/{job}/download")
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
  cookie = client.cookie_header().encode()
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
