"""The study's results (docs/method.md §8) per experiment: the fraction of wins of each
pair averaged over scenes with a 95% confidence interval, the fraction of all choices
each class won (the bars of the paper's Figure 10), and a Bradley-Terry score per class.
"""

import csv
import dataclasses
import io
import math

from scipy import stats

from dped_tf import fileio

# Bradley-Terry prior: this many virtual wins each way for every pair an experiment
# compares, so a class that never (or always) wins still has a finite score.
BT_PSEUDO_WINS = 0.5


@dataclasses.dataclass
class PairResult:
  """`first` beat `second` in `fraction` of the votes, averaged over `scenes` scenes."""
  experiment: str
  first: str
  second: str
  fraction: float
  ci_low: float
  ci_high: float
  votes: int
  scenes: int


@dataclasses.dataclass
class ClassResult:
  """`share`: the fraction of all the experiment's choices that went to `name`."""
  experiment: str
  name: str
  share: float
  wins: int
  votes: int
  bradley_terry: float


def pair_results(votes):
  """Per experiment and class pair (in the order the classes first appear in the
  experiment's name): the first class's fraction of wins, averaged over scenes, with a
  95% Student-t interval over scenes (nan with fewer than two scenes)."""
  by_pair = {}
  for v in votes:
    classes = v["experiment"].split("-")
    a, b = sorted((v["left_class"], v["right_class"]), key=classes.index)
    scene = by_pair.setdefault((v["experiment"], a, b), {}).setdefault(v["scene"], [0, 0])
    scene[0] += v["chosen_class"] == a
    scene[1] += 1
  out = []
  for (e, a, b), scenes in by_pair.items():
    fractions = [wins / n for wins, n in scenes.values()]
    mean = sum(fractions) / len(fractions)
    low = high = math.nan
    if len(fractions) > 1:
      sd = math.sqrt(sum((f - mean) ** 2 for f in fractions) / (len(fractions) - 1))
      half = stats.t.ppf(0.975, len(fractions) - 1) * sd / math.sqrt(len(fractions))
      low, high = max(0.0, mean - half), min(1.0, mean + half)
    out.append(PairResult(e, a, b, mean, low, high, sum(n for _, n in scenes.values()),
                          len(fractions)))
  order = lambda r: r.experiment.split("-").index  # noqa: E731
  return sorted(out, key=lambda r: (r.experiment, order(r)(r.first), order(r)(r.second)))


def class_results(votes):
  """Per experiment and class: share of all choices and Bradley-Terry score."""
  out = []
  for e in sorted({v["experiment"] for v in votes}):
    mine = [v for v in votes if v["experiment"] == e]
    classes = e.split("-")
    scores = bradley_terry(classes, [(v["chosen_class"],
                                      v["right_class"] if v["chosen_side"] == "left"
                                      else v["left_class"]) for v in mine])
    for c in classes:
      wins = sum(v["chosen_class"] == c for v in mine)
      out.append(ClassResult(e, c, wins / len(mine), wins, len(mine), scores[c]))
  return out


def bradley_terry(classes, outcomes, iterations=10000, tol=1e-12):
  """Bradley-Terry strengths {class: p}, summing to 1, from (winner, loser) pairs:
  P(i beats j) = p_i / (p_i + p_j), maximum a posteriori with BT_PSEUDO_WINS virtual
  wins each way on every compared pair; Hunter's (2004) MM iterations."""
  index = {c: i for i, c in enumerate(classes)}
  k = len(classes)
  wins = [[0.0] * k for _ in range(k)]
  for winner, loser in outcomes:
    wins[index[winner]][index[loser]] += 1
  for i in range(k):
    for j in range(k):
      if i != j and wins[i][j] + wins[j][i] > 0:
        wins[i][j] += BT_PSEUDO_WINS
  games = [[wins[i][j] + wins[j][i] for j in range(k)] for i in range(k)]
  p = [1.0 / k] * k
  for _ in range(iterations):
    new = []
    for i in range(k):
      denominator = sum(games[i][j] / (p[i] + p[j]) for j in range(k) if j != i)
      new.append(sum(wins[i]) / denominator if denominator else p[i])
    total = sum(new)
    new = [x / total for x in new]
    done = max(abs(x - y) for x, y in zip(new, p)) < tol
    p = new
    if done:
      break
  return dict(zip(classes, p))


def number(x):
  """How the results show a fraction or score: 4 decimals, "n/a" for an interval that
  cannot be computed (nan: a pair seen on fewer than two scenes)."""
  return "n/a" if math.isnan(x) else f"{x:.4f}"


def write_csv(path, pairs, classes):
  """`csv_text` into `path`, atomically."""
  fileio.atomic_write_bytes(path, csv_text(pairs, classes).encode())


def csv_text(pairs, classes):
  """One row per pair (fraction of wins of `first`) and per class (share of all
  choices, Bradley-Terry score), numbers as `number` writes them."""
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["experiment", "comparison", "fraction", "ci_low", "ci_high", "votes", "scenes",
              "bradley_terry"])
  for r in pairs:
    w.writerow([r.experiment, f"{r.first} > {r.second}", number(r.fraction),
                number(r.ci_low), number(r.ci_high), r.votes, r.scenes, ""])
  for r in classes:
    w.writerow([r.experiment, f"{r.name} (all choices)", number(r.share), "", "", r.votes,
                "", number(r.bradley_terry)])
  return buf.getvalue()
