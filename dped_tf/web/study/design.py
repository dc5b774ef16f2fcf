"""The study's design (docs/method.md §8): classes, scenes, experiments, each rater's plan.

A study has classes of pictures (one folder each, the same scene names in every folder)
and experiments of three (or more) classes; every experiment asks each pairwise
combination of its classes on every scene. Each rater gets all questions in an order and
with left/right sides drawn from a generator seeded by the rater's id, so a rater who
comes back sees the same sequence and resumes at the first unanswered question.
"""

import dataclasses
import hashlib
import itertools
import os
import random

from dped_tf.errors import DpedError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
SIDES = ("left", "right")


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
