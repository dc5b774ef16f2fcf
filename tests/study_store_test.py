"""The study's vote store: one vote per rater and position, WAL journal with full sync,
read back in the order cast, and one-line errors for files that are no study database.
(A server killed mid-study loses no vote: tests/study_server_test.py.)"""

import sqlite3

import pytest

from dped_tf.errors import DpedError
from dped_tf.web.study import design
from dped_tf.web.study import store


def test_a_position_takes_one_vote_and_votes_read_back_in_order(tmp_path):
  path = str(tmp_path / "votes.sqlite")
  votes = store.VoteStore(path)
  assert not votes.has_rater("ann")
  votes.add_rater("ann")
  votes.add_rater("ann")  # a second start keeps the rater
  assert votes.has_rater("ann") and votes.answered("ann") == 0
  first = design.Question("a-b", "lake", "b", "a")
  assert votes.add_vote("ann", 0, first, "left")
  assert not votes.add_vote("ann", 0, design.Question("a-b", "tree", "a", "b"), "right")
  assert votes.add_vote("ann", 1, design.Question("a-b", "tree", "a", "b"), "right")
  assert votes.answered("ann") == 2
  rows = [(v["rater"], v["position"], v["scene"], v["left_class"], v["right_class"],
           v["chosen_side"], v["chosen_class"]) for v in store.open_votes(path)]
  assert rows == [("ann", 0, "lake", "b", "a", "left", "b"),
                  ("ann", 1, "tree", "a", "b", "right", "b")]
  assert votes.votes() == store.open_votes(path)
  with sqlite3.connect(path) as db:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
  assert votes.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_files_that_are_no_study_database_are_one_line_errors(tmp_path):
  with pytest.raises(DpedError, match=r"nothing\.sqlite: no such study database"):
    store.open_votes(str(tmp_path / "nothing.sqlite"))
  junk = tmp_path / "junk.sqlite"
  junk.write_bytes(b"not sqlite at all, just some bytes" * 100)
  for read in (store.open_votes, store.VoteStore):
    with pytest.raises(DpedError, match=r"junk\.sqlite: not a study database"):
      read(str(junk))
  assert junk.read_bytes() == b"not sqlite at all, just some bytes" * 100
