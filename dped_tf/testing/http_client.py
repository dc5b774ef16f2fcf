"""For the web tests: a plain-HTTP client of a `dped-tf study` or `serve` server with its
own cookies (the session, the rater, the tokens) and the page's CSRF token; raw requests;
the hostile requests every server must refuse with a 4xx; waiting on a condition."""

import http.client
import re
import socket
import time
import urllib.parse

WAIT_S = 240


class Client:
  """One browser's worth of cookies over http.client; a fresh connection per request."""

  def __init__(self, url, timeout=30):
    self.host = urllib.parse.urlsplit(url).netloc
    self.cookies, self.timeout, self.csrf = {}, timeout, ""

  def request(self, method, path, body=None, headers=None):
    """(status, body text, response headers); Set-Cookie values are kept, and a page's
    CSRF token (hidden field or data-csrf) is remembered."""
    c = http.client.HTTPConnection(self.host, timeout=self.timeout)
    try:
      headers = dict(headers or {})
      if self.cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
      if body is not None and method == "POST":
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
      c.request(method, path, body, headers)
      r = c.getresponse()
      data = r.read()
      for cookie in r.msg.get_all("Set-Cookie") or []:
        name, _, value = cookie.split(";")[0].partition("=")
        self.cookies[name.strip()] = value
      text = data.decode("utf-8", "replace")
      found = re.search(r'(?:name="csrf" value|data-csrf)="([^"]*)"', text)
      if found:
        self.csrf = found.group(1)
      return r.status, text, r.msg
    finally:
      c.close()

  def cookie_header(self):
    return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

  def get_bytes(self, path):
    """The raw body of a GET that must answer 200."""
    c = http.client.HTTPConnection(self.host, timeout=self.timeout)
    try:
      c.request("GET", path, headers={"Cookie": self.cookie_header()})
      r = c.getresponse()
      assert r.status == 200, (path, r.status)
      return r.read()
    finally:
      c.close()


def wait_for(condition, what, timeout=WAIT_S, every=0.05):
  """`condition()` once truthy, polled every `every` s; fails after `timeout` s."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    value = condition()
    if value:
      return value
    time.sleep(every)
  raise AssertionError(f"timed out waiting for {what}")


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
  cookie = client.cookie_header()
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
