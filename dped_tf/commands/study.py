"""`dped-tf study`: the paper's pairwise user study as a local web app (docs/method.md §8).

  dped-tf study --class_dir phone=DIR --class_dir dped=DIR --class_dir dslr=DIR \
      [--experiment phone,dped,dslr ...] --db study.sqlite
  dped-tf study --results --db study.sqlite --out DIR   # CSV + Figure-10-style chart
"""

import os

from absl import flags

from dped_tf.errors import DpedError
from dped_tf.lazy import lazy_import

access = lazy_import("dped_tf.web.access")
pages = lazy_import("dped_tf.web.pages")
analysis = lazy_import("dped_tf.web.study.analysis")
app = lazy_import("dped_tf.web.study.app")
charts = lazy_import("dped_tf.web.study.charts")
design = lazy_import("dped_tf.web.study.design")
store = lazy_import("dped_tf.web.study.store")

USAGE = "--class_dir NAME=FOLDER --class_dir NAME=FOLDER ... | --results"
EXAMPLE = ("dped-tf study --class_dir phone=photos/phone --class_dir dped=enhanced/dped "
           "--class_dir dslr=photos/dslr")


def define_flags(fv):
  flags.DEFINE_multi_string("class_dir", [], "NAME=FOLDER, one per class of pictures; "
                            "the same scene (file) names in every folder.", flag_values=fv)
  flags.DEFINE_multi_string("experiment", [], "Comma-separated classes compared pairwise "
                            "(repeat for more experiments); default: one experiment of all "
                            "classes.", flag_values=fv)
  flags.DEFINE_string("db", "study.sqlite", "SQLite file of the votes (created if missing).",
                      flag_values=fv)
  flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; anything but loopback "
                      "needs --token (generated and printed when not given).", flag_values=fv)
  flags.DEFINE_string("token", None, "Access token for every page (raters open /?token=T "
                      "once; a cookie carries it after).", flag_values=fv)
  flags.DEFINE_string("results_token", None, "Token for /results and /results.csv, never "
                      "given to raters (generated and printed when not given).",
                      flag_values=fv)
  flags.DEFINE_integer("port", 8000, "Port to listen on.", lower_bound=1, upper_bound=65535,
                       flag_values=fv)
  flags.DEFINE_bool("results", False, "Write the results of --db into --out and exit.",
                    flag_values=fv)
  flags.DEFINE_string("out", "study_results", "Folder for results.csv and figure10.png.",
                      flag_values=fv)


def main(fv, argv):
  if argv:
    raise DpedError(f"unexpected arguments: {' '.join(argv)}")
  if fv.results:
    return _write_results(fv)
  if not fv.class_dir:
    raise DpedError("give the classes with --class_dir NAME=FOLDER (or --results)")
  folders = {}
  for item in fv.class_dir:
    name, sep, folder = item.partition("=")
    if not sep or not folder:
      raise DpedError(f"--class_dir {item}: use NAME=FOLDER")
    if name in folders:
      raise DpedError(f"--class_dir {item}: class {name} given twice")
    folders[name] = folder
  experiments = [e.split(",") for e in fv.experiment] or None
  the_study = design.Study.from_folders(folders, experiments)
  token, generated = access.token_for(fv.host, fv.token)
  results_token = fv.results_token or access.new_token()
  if results_token == token:
    raise DpedError("--results_token: give it a value other than --token's")
  study_app = app.create_app(the_study, store.VoteStore(fv.db), token, results_token)
  print(f"{len(the_study.experiments)} experiments, {len(the_study.scenes)} scenes, "
        f"{len(the_study.questions())} questions per rater; votes in {fv.db}")
  pages.run_server(study_app, fv.host, fv.port, token, generated,
                   [("results (for you, not the raters)",
                     f"/results?{f'token={token}&' if token else ''}"
                     f"results_token={results_token}")])
  return 0


def _write_results(fv):
  """results.csv and figure10.png of --db's votes into --out; the numbers on stdout."""
  votes = store.open_votes(fv.db)
  if not votes:
    raise DpedError(f"{fv.db}: no votes yet")
  pairs, classes = analysis.pair_results(votes), analysis.class_results(votes)
  os.makedirs(fv.out, exist_ok=True)
  analysis.write_csv(os.path.join(fv.out, "results.csv"), pairs, classes)
  charts.plot_figure10(os.path.join(fv.out, "figure10.png"), pairs, classes)
  n = analysis.number
  for r in pairs:
    print(f"{r.experiment}: {r.first} > {r.second} {n(r.fraction)} "
          f"[{n(r.ci_low)}, {n(r.ci_high)}] ({r.votes} votes, {r.scenes} scenes)")
  for r in classes:
    print(f"{r.experiment}: {r.name} won {n(r.share)} of {r.votes} choices, "
          f"Bradley-Terry {n(r.bradley_terry)}")
  print(f"{len(votes)} votes -> {fv.out}/results.csv, {fv.out}/figure10.png")
  return 0
