"""The study's statistics against independent formulas: Bradley-Terry against a direct
likelihood maximum, per-pair fractions against a Student-t interval over scenes."""

import math

import numpy as np
import pytest
from scipy import optimize
from scipy import stats

from dped_tf.web.study import analysis


def vote(left, right, winner, scene):
  """A vote row of experiment a-b-c as the store returns it."""
  return {"rater": "r", "experiment": "a-b-c", "scene": scene, "left_class": left,
          "right_class": right, "chosen_side": "left" if winner == left else "right",
          "chosen_class": winner}


def test_bradley_terry_against_a_direct_likelihood_maximum():
  classes = ["a", "b", "c"]
  outcomes = ([("a", "b")] * 7 + [("b", "a")] * 3 + [("a", "c")] * 9 + [("c", "a")] * 1
              + [("b", "c")] * 5 + [("c", "b")] * 4)
  got = analysis.bradley_terry(classes, outcomes)
  wins = np.zeros((3, 3))
  for w, l in outcomes:
    wins[classes.index(w), classes.index(l)] += 1
  wins += 0.5 * (1 - np.eye(3))  # the documented prior: half a win each way per pair

  def negative_log_likelihood(theta):
    s = np.concatenate([[0.0], theta])
    diff = s[:, None] - s[None, :]
    return float(np.sum(wins * np.logaddexp(0.0, -diff)))

  theta = optimize.minimize(negative_log_likelihood, np.zeros(2), method="BFGS",
                            options={"gtol": 1e-10}).x
  p = np.exp(np.concatenate([[0.0], theta]))
  p /= p.sum()
  np.testing.assert_allclose([got[c] for c in classes], p, atol=1e-6)
  # Two classes: the maximum has p_a / p_b = (w_ab + 1/2) / (w_ba + 1/2).
  two = analysis.bradley_terry(["x", "y"], [("x", "y")] * 6 + [("y", "x")] * 2)
  assert two["x"] / two["y"] == pytest.approx(6.5 / 2.5, rel=1e-9)
  # A class that never wins keeps a finite, smallest score.
  never = analysis.bradley_terry(classes, [("a", "c"), ("b", "c"), ("a", "b")])
  assert 0 < never["c"] < never["b"] < never["a"]


def test_pair_fractions_are_averaged_over_scenes_with_a_t_interval():
  votes = ([vote("a", "b", "a", "s1")] * 3 + [vote("b", "a", "a", "s2"),
                                                 vote("a", "b", "b", "s2")]
           + [vote("a", "b", "b", "s3")] * 2 + [vote("a", "c", "c", "s1")])
  pairs = {(r.first, r.second): r for r in analysis.pair_results(votes)}
  ab = pairs[("a", "b")]
  per_scene = [1.0, 0.5, 0.0]  # s1: a 3 of 3, s2: 1 of 2, s3: 0 of 2
  half = stats.t.ppf(0.975, 2) * np.std(per_scene, ddof=1) / math.sqrt(3)
  assert ab.fraction == pytest.approx(0.5) and ab.votes == 7 and ab.scenes == 3
  assert (ab.ci_low, ab.ci_high) == pytest.approx((max(0, 0.5 - half), min(1, 0.5 + half)))
  assert pairs[("a", "c")].fraction == 0.0 and math.isnan(pairs[("a", "c")].ci_low)
  shares = {r.name: (r.share, r.wins, r.votes) for r in analysis.class_results(votes)}
  assert shares == {"a": (4 / 8, 4, 8), "b": (3 / 8, 3, 8), "c": (1 / 8, 1, 8)}
