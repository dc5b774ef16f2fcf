"""The paper's pairwise user study (docs/method.md §8): design, vote store, results.

A study has classes of pictures (one folder each, the same scene names in every folder)
and experiments of three (or more) classes; every experiment asks each pairwise
combination of its classes on every scene. Each rater gets all questions in an order and
with left/right sides drawn from a generator seeded by the rater's id, so a rater who
comes back sees the same sequence and resumes at the first unanswered question.

Votes live in SQLite (WAL journal, one row per vote, committed before the answer goes
out). Results per experiment: the fraction of wins of each pair averaged over scenes
with a 95% confidence interval, the fraction of all choices each class won (the bars of
the paper's Figure 10), and a Bradley-Terry score per class.
"""

import dataclasses
import hashlib
import itertools
import math
import os
import random
import sqlite3
import threading
import time
import urllib.parse

from dped_tf.errors import DpedError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
SIDES = ("left", "right")
# Bradley-Terry prior: this many virtual wins each way for every pair an experiment
# compares, so a class that never (or always) wins still has a finite score.
BT_PSEUDO_WINS = 0.5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
  rater TEXT PRIMARY KEY,
  created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
  id INTEGER PRIMARY KEY,
  rater TEXT NOT NULL REFERENCES raters(rater),
  experiment TEXT NOT NULL,
  scene TEXT NOT NULL,
  left_class TEXT NOT NULL,
  right_class TEXT NOT NULL,
  chosen_side TEXT NOT NULL CHECK (chosen_side IN ('left', 'right')),
  chosen_class TEXT NOT NULL,
  time REAL NOT NULL,
  position INTEGER NOT NULL,
  UNIQUE (rater, position));
"""


@dataclasses.dataclass(frozen=True)
class Question:
  """One comparison as a rater sees it: a scene of `experiment`, two classes, sides."""
  experiment: str
  scene: str
  left: str
  right: str


@dataclasses.dataclass
class Study:
  """The scenes (scene -> class -> picture path) and experiments (name -> classes)."""
  scenes: dict
  experiments: dict

  @classmethod
  def from_folders(cls, folders, experiments=None):
    """`folders`: {class: folder}; `experiments`: lists of class names (default: one
    experiment of all classes). Scenes are file names without extension; each must be
    in every folder that an experiment uses."""
    for name in folders:
      if not name or not all(ch.isalnum() or ch == "_" for ch in name):
        raise DpedError(f"class name {name!r}: use letters, digits and _")
    experiments = [list(e) for e in (experiments or [list(folders)])]
    named = {}
    for classes in experiments:
      unknown = [c for c in classes if c not in folders]
      if unknown:
        raise DpedError(f"experiment {','.join(classes)}: unknown class {unknown[0]!r} "
                        f"(classes: {', '.join(folders)})")
      if len(classes) < 2 or len(set(classes)) != len(classes):
        raise DpedError(f"experiment {','.join(classes)}: needs two or more distinct classes")
      named["-".join(classes)] = tuple(classes)
    files = {c: _scan(c, folder) for c, folder in folders.items()}
    used = sorted({c for classes in named.values() for c in classes})
    common = set.intersection(*(set(files[c]) for c in used))
    if not common:
      raise DpedError(f"no scene name is in every folder of {', '.join(used)}")
    for c in used:
      extra = sorted(set(files[c]) - common)
      if extra:
        raise DpedError(f"{files[c][extra[0]]}: no picture of scene {extra[0]!r} in every "
                        f"other folder")
    scenes = {s: {c: files[c][s] for c in used} for s in sorted(common)}
    return cls(scenes, named)

  def questions(self):
    """Every (experiment, scene, class pair), in a fixed order."""
    return [(e, s, a, b) for e, classes in self.experiments.items()
            for a, b in itertools.combinations(classes, 2) for s in self.scenes]

  def plan(self, rater):
    """The rater's questions: shuffled order and sides, the same on every call."""
    rng = random.Random(hashlib.sha256(rater.encode()).hexdigest())
    order = self.questions()
    rng.shuffle(order)
    out = []
    for e, s, a, b in order:
      left, right = (a, b) if rng.random() < 0.5 else (b, a)
      out.append(Question(e, s, left, right))
    return out


def _scan(name, folder):
  """{scene: real path} of the image files directly inside `folder`; symlinks that lead
  outside it are left out."""
  if not os.path.isdir(folder):
    raise DpedError(f"{folder}: class {name}: no such folder")
  root = os.path.realpath(folder)
  out = {}
  for entry in sorted(os.listdir(folder)):
    stem, ext = os.path.splitext(entry)
    path = os.path.realpath(os.path.join(folder, entry))
    if (entry.startswith(".") or ext.lower() not in IMAGE_EXTENSIONS
        or os.path.dirname(path) != root or not os.path.isfile(path)):
      continue
    if stem in out:
      raise DpedError(f"{folder}: two pictures of scene {stem!r}")
    out[stem] = path
  if not out:
    raise DpedError(f"{folder}: no pictures ({', '.join(IMAGE_EXTENSIONS)})")
  return out


def question_token(rater, position, question):
  """What a page sends back with a vote: names the pair shown without revealing it."""
  text = "|".join([rater, str(position), question.experiment, question.scene,
                   question.left, question.right])
  return hashlib.sha256(text.encode()).hexdigest()[:20]


class VoteStore:
  """SQLite votes: WAL journal, every vote committed (synchronous=FULL) on its own
  transaction before the server answers. One connection behind a lock serves the app's
  threads; a refused request reads only, so it leaves the files as they were."""

  def __init__(self, path):
    self.path = path
    self.lock = threading.Lock()
    try:
      self.db = sqlite3.connect(path, timeout=30, isolation_level=None,
                                check_same_thread=False)
      self.db.execute("PRAGMA journal_mode=WAL")
      self.db.execute("PRAGMA synchronous=FULL")
      self.db.executescript(_SCHEMA)
    except sqlite3.DatabaseError as e:
      raise DpedError(f"{path}: not a study database ({e})") from None

  def _fetch(self, sql, args=()):
    with self.lock:
      return self.db.execute(sql, args).fetchall()

  def add_rater(self, rater):
    with self.lock:
      self.db.execute("INSERT OR IGNORE INTO raters VALUES (?, ?)", (rater, time.time()))

  def has_rater(self, rater):
    return bool(self._fetch("SELECT 1 FROM raters WHERE rater = ?", (rater,)))

  def answered(self, rater):
    """How many questions the rater has answered (they answer in plan order)."""
    return self._fetch("SELECT COUNT(*) FROM votes WHERE rater = ?", (rater,))[0][0]

  def add_vote(self, rater, position, question, side):
    """Records one vote; False (and nothing written) when that position already has one."""
    chosen = question.left if side == "left" else question.right
    if self._fetch("SELECT 1 FROM votes WHERE rater = ? AND position = ?", (rater, position)):
      return False
    with self.lock:
      try:
        self.db.execute("INSERT INTO votes (rater, experiment, scene, left_class, right_class, "
                        "chosen_side, chosen_class, time, position) VALUES (?,?,?,?,?,?,?,?,?)",
                        (rater, question.experiment, question.scene, question.left,
                         question.right, side, chosen, time.time(), position))
      except sqlite3.IntegrityError:
        return False
    return True

  def votes(self):
    """Every vote as a dict, in the order they were cast."""
    with self.lock:
      return open_votes(self.path)


def open_votes(path):
  """The votes of the study database at `path`, read without writing to it."""
  if not os.path.isfile(path):
    raise DpedError(f"{path}: no such study database")
  try:
    db = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", uri=True)
    try:
      cursor = db.execute("SELECT * FROM votes ORDER BY id")
      names = [d[0] for d in cursor.description]
      return [dict(zip(names, row)) for row in cursor.fetchall()]
    finally:
      db.close()
  except sqlite3.DatabaseError as e:
    raise DpedError(f"{path}: not a study database ({e})") from None


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
  from scipy import stats  # pylint: disable=import-outside-toplevel
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


def write_csv(path, pairs, classes):
  """One row per pair (fraction of wins of `first`) and per class (share of all
  choices, Bradley-Terry score)."""
  import csv  # pylint: disable=import-outside-toplevel
  import io  # pylint: disable=import-outside-toplevel
  from dped_tf import fileio  # pylint: disable=import-outside-toplevel
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow(["experiment", "comparison", "fraction", "ci_low", "ci_high", "votes", "scenes",
              "bradley_terry"])
  for r in pairs:
    w.writerow([r.experiment, f"{r.first} > {r.second}", f"{r.fraction:.4f}",
                f"{r.ci_low:.4f}", f"{r.ci_high:.4f}", r.votes, r.scenes, ""])
  for r in classes:
    w.writerow([r.experiment, f"{r.name} (all choices)", f"{r.share:.4f}", "", "", r.votes,
                "", f"{r.bradley_terry:.4f}"])
  fileio.atomic_write_bytes(path, buf.getvalue().encode())


def plot_figure10(path, pairs, classes):
  """Figure-10-style bars: per experiment, one stacked bar per pair (the two classes'
  fractions of wins, with the 95% interval) and one for the shares of all choices."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from dped_tf import fileio  # pylint: disable=import-outside-toplevel
  experiments = sorted({r.experiment for r in classes})
  names = list(dict.fromkeys(r.name for r in classes))
  colors = dict(zip(names, plt.get_cmap("tab10").colors))
  fig, axes = plt.subplots(1, len(experiments), figsize=(4.2 * len(experiments), 3.6),
                           squeeze=False)
  for ax, e in zip(axes[0], experiments):
    bars = [r for r in pairs if r.experiment == e]
    def segment(x, bottom, height, name):
      ax.bar(x, height, bottom=bottom, color=colors[name], edgecolor="white")
      if height >= 0.08:
        ax.text(x, bottom + height / 2, f"{height:.0%}", ha="center", va="center",
                fontsize=8, color="white")

    for x, r in enumerate(bars):
      segment(x, 0.0, r.fraction, r.first)
      segment(x, r.fraction, 1 - r.fraction, r.second)
      if not math.isnan(r.ci_low):
        ax.errorbar(x, r.fraction, yerr=[[r.fraction - r.ci_low], [r.ci_high - r.fraction]],
                    color="black", capsize=4)
    bottom = 0.0
    for r in (r for r in classes if r.experiment == e):
      segment(len(bars), bottom, r.share, r.name)
      bottom += r.share
    ax.set_xticks(range(len(bars) + 1),
                  [f"{r.first}\nvs\n{r.second}" for r in bars] + ["all\nchoices"], fontsize=8)
    ax.axhline(0.5, color="gray", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_title(f"{e} ({bars[0].votes if bars else 0} votes per pair)", fontsize=9)
  axes[0][0].set_ylabel("fraction of choices")
  fig.legend([plt.Rectangle((0, 0), 1, 1, color=colors[n]) for n in names], names,
             loc="upper center", ncol=len(names), fontsize=8, frameon=False)
  fig.tight_layout(rect=(0, 0, 1, 0.92))
  import io  # pylint: disable=import-outside-toplevel
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120)
  plt.close(fig)
  fileio.atomic_write_bytes(path, buf.getvalue())
