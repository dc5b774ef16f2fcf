"""The study's design: every rater's plan asks every pair of every experiment on every
scene once, in a rater's own fixed order; folders that do not make a study are refused."""

import itertools

import pytest

from dped_tf.errors import DpedError
from dped_tf.testing.data import STUDY_SCENES as SCENES
from dped_tf.testing.data import write_study_folders as make_folders
from dped_tf.web.study import design


def test_plan_shuffles_every_question_once_per_rater(tmp_path):
  s = design.Study.from_folders(make_folders(tmp_path, ("a", "b", "c", "d")),
                                [["a", "b", "c"], ["b", "c", "d"]])
  expected = sorted((e, sc, *sorted(p)) for e, cl in (("a-b-c", "abc"), ("b-c-d", "bcd"))
                    for p in itertools.combinations(cl, 2) for sc in SCENES)
  assert len(expected) == 18
  plans = {r: s.plan(r) for r in ("ann", "bob", "cy")}
  for plan in plans.values():
    assert sorted((q.experiment, q.scene, *sorted((q.left, q.right))) for q in plan) == expected
  assert plans["ann"] == s.plan("ann")  # a returning rater sees the same sequence
  assert len({tuple(p) for p in plans.values()}) == 3
  lefts = [q.left for p in plans.values() for q in p]
  firsts = [min(q.left, q.right) for p in plans.values() for q in p]
  assert 0 < sum(a == b for a, b in zip(lefts, firsts)) < len(lefts)  # both sides occur


def test_class_names_and_experiments_are_checked(tmp_path):
  folders = make_folders(tmp_path)
  with pytest.raises(DpedError, match=r"class name 'a-b': use letters, digits and _"):
    design.Study.from_folders({"a-b": folders["phone"], "dslr": folders["dslr"]})
  with pytest.raises(DpedError, match="experiment dped: needs two or more distinct classes"):
    design.Study.from_folders(folders, [["dped"]])
  with pytest.raises(DpedError, match="experiment dped,dped: needs two or more distinct"):
    design.Study.from_folders(folders, [["dped", "dped"]])
  s = design.Study.from_folders(folders, [["phone", "dslr"]])
  assert list(s.experiments) == ["phone-dslr"] and set(s.scenes[SCENES[0]]) == {"phone", "dslr"}


def test_a_question_token_names_rater_position_and_pair():
  q = design.Question("a-b-c", "lake", "a", "b")
  token = design.question_token("ann", 3, q)
  assert len(token) == 20 and token == design.question_token("ann", 3, q)
  others = [design.question_token("bob", 3, q), design.question_token("ann", 4, q),
            design.question_token("ann", 3, design.Question("a-b-c", "lake", "b", "a")),
            design.question_token("ann", 3, design.Question("a-b-c", "tree", "a", "b"))]
  assert token not in others and len(set(others)) == 4
