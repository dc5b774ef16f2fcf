"""The study's pages (docs/method.md §8): a rater starts, answers every pair, can leave
and come back (rater id in a cookie); votes are checked against the rater's plan and
every form carries the session's CSRF token. /results (the tables and the Figure-10
chart) and /results.csv need the results token (`access.wrap`), which raters never get.
"""

import base64
import secrets
import urllib.parse

from dped_tf.web import pages  # first: a one-line error without the web extra
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route
from dped_tf.web import access
from dped_tf.web.study import analysis
from dped_tf.web.study import charts
from dped_tf.web.study import design

COOKIE = "dped_rater"
MAX_FORM_BYTES = 1024


def create_app(the_study, store, token=None, results_token=None):
  """Starlette app for `the_study` (a `design.Study`) storing votes in `store` (a
  `store.VoteStore`); every page needs `token` (when given), /results `results_token`."""
  templates = pages.templates()
  secret = store.secret()

  total = len(the_study.questions())

  def rater_of(request):
    rater = request.cookies.get(COOKIE, "")
    return rater if rater and store.has_rater(rater) else None

  def index(request):
    rater = rater_of(request)
    if rater is None:
      return templates.TemplateResponse(request, "study_start.html", {
          "total": total, "csrf": access.csrf_token(request, secret)})
    position = store.answered(rater)
    if position >= total:
      return templates.TemplateResponse(request, "study_done.html", {"total": total})
    question = the_study.plan(rater)[position]
    return templates.TemplateResponse(request, "study_question.html", {
        "position": position, "number": position + 1, "total": total,
        "percent": round(100 * position / total), "scene": question.scene,
        "token": design.question_token(rater, position, question),
        "csrf": access.csrf_token(request, secret)})

  async def start(request):
    form = _parse_form(await _read_body(request), ("csrf",))
    if form is None or not access.csrf_ok(request, secret, form["csrf"]):
      return PlainTextResponse("no valid CSRF token: reload the page", status_code=403)
    rater = rater_of(request)
    if rater is None:
      rater = secrets.token_urlsafe(16)
      store.add_rater(rater)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, rater, max_age=365 * 86400, httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response

  def image(request):
    """The picture on `side` of a question the rater has been shown; only files found
    in the class folders at start-up are ever served."""
    rater = rater_of(request)
    if rater is None:
      return PlainTextResponse("no rater: open / first", status_code=403)
    position, side = request.path_params["position"], request.path_params["side"]
    if side not in design.SIDES or position > store.answered(rater) or position >= total:
      return PlainTextResponse("not a question shown to you", status_code=404)
    question = the_study.plan(rater)[position]
    name = question.left if side == "left" else question.right
    return FileResponse(the_study.scenes[question.scene][name],
                        headers={"Cache-Control": "private, no-store"})

  async def vote(request):
    rater = rater_of(request)
    if rater is None:
      return PlainTextResponse("no rater: open / first", status_code=403)
    form = _parse_form(await _read_body(request), ("csrf", "position", "side", "token"))
    if form is None or not _vote_fields_ok(form):
      return PlainTextResponse("malformed vote", status_code=400)
    if not access.csrf_ok(request, secret, form["csrf"]):
      return PlainTextResponse("no valid CSRF token: reload the page", status_code=403)
    form["position"] = int(form["position"])
    answered = store.answered(rater)
    if form["position"] < answered:
      return PlainTextResponse("already answered", status_code=409)
    if form["position"] > answered or form["position"] >= total:
      return PlainTextResponse("not the question shown to you", status_code=409)
    question = the_study.plan(rater)[form["position"]]
    if form["token"] != design.question_token(rater, form["position"], question):
      return PlainTextResponse("not the pair shown to you", status_code=409)
    if not store.add_vote(rater, form["position"], question, form["side"]):
      return PlainTextResponse("already answered", status_code=409)
    return RedirectResponse("/", status_code=303)

  def results(request):
    votes = store.votes()
    pairs, classes = analysis.pair_results(votes), analysis.class_results(votes)
    chart = (base64.b64encode(charts.figure10_png(pairs, classes)).decode()
             if votes else None)
    return templates.TemplateResponse(request, "study_results.html", {
        "pairs": pairs, "classes": classes, "number": analysis.number, "chart": chart,
        "votes": len(votes), "raters": len({v["rater"] for v in votes})},
        headers={"Cache-Control": "private, no-store"})

  def results_csv(request):
    votes = store.votes()
    text = analysis.csv_text(analysis.pair_results(votes), analysis.class_results(votes))
    return Response(text, media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="results.csv"',
        "Cache-Control": "private, no-store"})

  app = Starlette(routes=[
      Route("/", index), Route("/start", start, methods=["POST"]),
      Route("/image/{position:int}/{side}", image), Route("/vote", vote, methods=["POST"]),
      Route("/results", results), Route("/results.csv", results_csv), pages.static_mount()])
  return access.wrap(app, token, results_token)


async def _read_body(request):
  """The request's body; None past MAX_FORM_BYTES (the rest is never read) or when the
  client went away."""
  body = b""
  try:
    async for chunk in request.stream():
      body += chunk
      if len(body) > MAX_FORM_BYTES:
        return None
  except ClientDisconnect:
    return None
  return body


def _parse_form(body, names):
  """{name: value} from an urlencoded body with exactly the fields `names`, each once,
  else None."""
  if body is None:
    return None
  try:
    fields = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True,
                                   max_num_fields=len(names))
  except (UnicodeDecodeError, ValueError):
    return None
  if sorted(fields) != sorted(names) or any(len(v) != 1 for v in fields.values()):
    return None
  return {k: v[0] for k, v in fields.items()}


def _vote_fields_ok(form):
  return (form["position"].isdigit() and len(form["position"]) <= 9
          and form["side"] in design.SIDES)
