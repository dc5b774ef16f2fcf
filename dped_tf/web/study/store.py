"""The study's votes in SQLite (docs/method.md §8): one row per vote, crash-safe.

WAL journal and synchronous=FULL: a vote is on disk before the server answers, so a
server killed at any moment loses no vote a rater saw accepted.
"""

import os
import secrets
import sqlite3
import threading
import time
import urllib.parse

from dped_tf.errors import DpedError

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
CREATE TABLE IF NOT EXISTS settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL);
"""


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

  def secret(self):
    """The study's server secret (for CSRF tokens), made on first use and kept in the
    database, so pages served before a restart stay valid after it."""
    with self.lock:
      self.db.execute("INSERT OR IGNORE INTO settings VALUES ('secret', ?)",
                      (secrets.token_hex(32),))
      return self.db.execute("SELECT value FROM settings WHERE name = 'secret'").fetchone()[0]

  def add_rater(self, rater):
    with self.lock:
      self.db.execute("INSERT OR IGNORE INTO raters VALUES (?, ?)", (rater, time.time()))

  def has_rater(self, rater):
    return bool(self._fetch("SELECT 1 FROM raters WHERE rater = ?", (rater,)))

  def answered(self, rater):
    """How many questions the rater has answered (they answer in plan order)."""
    return self._fetch("SELECT COUNT(*) FROM votes WHERE rater = ?", (rater,))[0][0]

  def add_vote(self, rater, position, question, side):
    """Records one vote on `question` (a `design.Question`); False (and nothing written)
    when that position already has one."""
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
