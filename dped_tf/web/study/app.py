"""The study's pages (docs/method.md §8): a rater starts, answers every pair, can leave
and come back (rater id in a cookie); votes are checked against the rater's plan."""

import secrets
import urllib.parse

from dped_tf.web import pages  # first: a one-line error without the web extra
from starlette.applications import Starlette
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route
from dped_tf.web.study import analysis
from dped_tf.web.study import design

COOKIE = "dped_rater"
MAX_FORM_BYTES = 1024


def create_app(the_study, store):
  """Starlette app for `the_study` (a `design.Study`) storing votes in `store` (a
  `store.VoteStore`)."""
  templates = pages.templates()

  total = len(the_study.questions())

  def rater_of(request):
    rater = request.cookies.get(COOKIE, "")
    return rater if rater and store.has_rater(rater) else None

  def index(request):
    rater = rater_of(request)
    if rater is None:
      return templates.TemplateResponse(request, "study_start.html", {"total": total})
    position = store.answered(rater)
    if position >= total:
      return templates.TemplateResponse(request, "study_done.html", {"total": total})
    question = the_study.plan(rater)[position]
    return templates.TemplateResponse(request, "study_question.html", {
        "position": position, "number": position + 1, "total": total,
        "percent": round(100 * position / total), "scene": question.scene,
        "token": design.question_token(rater, position, question)})

  def start(request):
    rater = rater_of(request)
    if rater is None:
      rater = secrets.token_urlsafe(16)
      store.add_rater(rater)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, rater, max_age=365 * 86400, httponly=True, samesite="strict")
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
    body = await request.body()
    form = _parse_form(body)
    if form is None:
      return PlainTextResponse("malformed vote", status_code=400)
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
    return templates.TemplateResponse(request, "study_results.html", {
        "pairs": analysis.pair_results(votes), "classes": analysis.class_results(votes),
        "votes": len(votes), "raters": len({v["rater"] for v in votes})})

  return Starlette(routes=[
      Route("/", index), Route("/start", start, methods=["POST"]),
      Route("/image/{position:int}/{side}", image), Route("/vote", vote, methods=["POST"]),
      Route("/results", results), pages.static_mount()])


def _parse_form(body):
  """{position, token, side} from an urlencoded body with exactly those fields, else None."""
  if len(body) > MAX_FORM_BYTES:
    return None
  try:
    fields = urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=True,
                                   max_num_fields=3)
  except (UnicodeDecodeError, ValueError):
    return None
  if sorted(fields) != ["position", "side", "token"] or any(len(v) != 1
                                                            for v in fields.values()):
    return None
  position, side, token = fields["position"][0], fields["side"][0], fields["token"][0]
  if not position.isdigit() or len(position) > 9 or side not in design.SIDES:
    return None
  return {"position": int(position), "side": side, "token": token}
