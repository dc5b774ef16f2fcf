"""Who may use the pages: access tokens and CSRF tokens, shared by `study` and `serve`.

- `token_for(host, token)`: the access token a server needs: `--token`, or a generated
  one when it binds anything but the loopback interface (the token is then printed).
- `TokenGate`: ASGI middleware; requests under a path prefix need the token, given once as
  a query parameter (answered with an HttpOnly SameSite=Strict cookie, and for a GET a
  redirect to the same address without it) and then carried by the cookie. The study
  gates all of its pages with the access token and /results with a second, results token.
- `RequestLimits`: ASGI middleware refusing over-long addresses and header sections.
- `Sessions`: ASGI middleware giving every browser a random session cookie;
  `csrf_token(request)` is an HMAC of it under a server secret, put in every form (hidden
  field) and page (for the upload's header); `csrf_ok` checks what a POST or PUT sent.
"""

import hashlib
import hmac
import ipaddress
import secrets
import urllib.parse

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.responses import RedirectResponse

SESSION_COOKIE = "dped_session"
MAX_URL_BYTES = 4096  # longer: 414
MAX_HEADER_BYTES = 16384  # all headers together; more: 431
MAX_TOKEN_CHARS = 256
TOKEN_COOKIE_DAYS = 30


def is_loopback(host):
  """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
  if host == "localhost":
    return True
  try:
    return ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def new_token():
  """A random token (192 bits, URL-safe)."""
  return secrets.token_urlsafe(24)


def token_for(host, token):
  """(access token or None, True when it was generated here): a server bound beyond
  loopback always has one."""
  if token:
    return token, False
  if is_loopback(host):
    return None, False
  return new_token(), True


def _same(given, expected):
  return (isinstance(given, str) and 0 < len(given) <= MAX_TOKEN_CHARS
          and hmac.compare_digest(given.encode(), expected.encode()))


def _secure(scope):
  return scope.get("scheme") == "https"


def _cookie_header(name, value, scope, max_age=None):
  """A Set-Cookie value: HttpOnly, SameSite=Strict, Path=/, Secure behind TLS."""
  response = PlainTextResponse("")
  response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict",
                      secure=_secure(scope))
  return response.headers["set-cookie"]


def _with_header(send, name, value):
  async def send_with(message):
    if message["type"] == "http.response.start":
      MutableHeaders(scope=message).append(name, value)
    await send(message)
  return send_with


class TokenGate:
  """Requests whose path starts with `prefix` need `token`: the query parameter `param`
  once (which sets cookie `cookie`), then that cookie; otherwise 403."""

  def __init__(self, app, token, param, cookie, prefix="/"):
    self.app, self.token, self.param, self.cookie, self.prefix = (app, token, param, cookie,
                                                                   prefix)

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
      return await self.app(scope, receive, send)
    request = Request(scope)
    given = request.query_params.get(self.param)
    if given is not None and _same(given, self.token):
      cookie = _cookie_header(self.cookie, self.token, scope, TOKEN_COOKIE_DAYS * 86400)
      if scope["method"] in ("GET", "HEAD"):  # the address bar loses the token
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != self.param]
        target = scope["path"] + ("?" + urllib.parse.urlencode(rest) if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.headers.append("set-cookie", cookie)
        return await response(scope, receive, send)
      return await self.app(scope, receive, _with_header(send, "set-cookie", cookie))
    if _same(request.cookies.get(self.cookie), self.token):
      return await self.app(scope, receive, send)
    what = "the results token" if self.prefix != "/" else "the access token"
    return await PlainTextResponse(f"forbidden: open the link with {what}",
                                   status_code=403)(scope, receive, send)


class RequestLimits:
  """Refuses over-long addresses (414) and header sections (431) before anything reads
  them (uvicorn's parser takes a large header section that arrives in one piece)."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] == "http":
      if len(scope.get("raw_path") or b"") + len(scope["query_string"]) > MAX_URL_BYTES:
        return await PlainTextResponse("address too long", 414)(scope, receive, send)
      if sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
        return await PlainTextResponse("headers too large", 431)(scope, receive, send)
    return await self.app(scope, receive, send)


class Sessions:
  """Every request has `scope["state"]["session"]`: the browser's session cookie, or a
  new random one set on the response."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    session = Request(scope).cookies.get(SESSION_COOKIE, "")
    if not (16 <= len(session) <= 64 and session.replace("-", "").replace("_", "").isalnum()):
      session = secrets.token_urlsafe(24)
      send = _with_header(send, "set-cookie", _cookie_header(SESSION_COOKIE, session, scope))
    scope.setdefault("state", {})["session"] = session
    return await self.app(scope, receive, send)


def csrf_token(request, secret):
  """The CSRF token of the request's session: HMAC-SHA256 under the server's secret."""
  return hmac.new(secret.encode(), request.state.session.encode(),
                  hashlib.sha256).hexdigest()[:32]


def csrf_ok(request, secret, given):
  """Whether `given` (a form field or header) is the session's CSRF token."""
  return _same(given, csrf_token(request, secret))


def wrap(app, token, results_token=None, results_prefix="/results"):
  """`app` behind the request limits, the access gate (with `token`), the results gate
  (with `results_token`) and the session cookie; either gate is left out when its token
  is None."""
  app = Sessions(app)
  if results_token:
    app = TokenGate(app, results_token, "results_token", "dped_results", results_prefix)
  if token:
    app = TokenGate(app, token, "token", "dped_token")
  return RequestLimits(app)
