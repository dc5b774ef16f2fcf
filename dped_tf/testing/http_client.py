"""For the web tests: a plain-HTTP client of a `dped-tf study` or `serve` server with its
own cookies (the session, the rater, the tokens) and the page's CSRF token."""

import http.client
import re
import urllib.parse


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
