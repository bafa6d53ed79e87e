"""People's answers, kept in SQLite: one row per pair answer (same, different, skip, undo) with who and when, and
one row per person's action (a pair question, or a group reviewed at once: confirm, take out, merge), so the log is
its own audit trail and the current answers are a replay of it. An action's pair answers are written in one
transaction and undone together: an acknowledged action survives a crash whole or not at all."""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..errors import ConfigError

SAME, DIFFERENT, SKIP, UNDO = "same", "different", "skip", "undo"
ANSWERS = (SAME, DIFFERENT, SKIP)
#: kinds of a person's action: one pair question, or one group reviewed at once
ACTION_KINDS = ("pair", "confirm", "take_out", "merge", "group")
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT NOT NULL, b TEXT NOT NULL, answer TEXT NOT NULL,
    actor TEXT NOT NULL, at REAL NOT NULL, undoes INTEGER);
CREATE TABLE IF NOT EXISTS actions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, actor TEXT NOT NULL, at REAL NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}', undoes INTEGER);
"""


@dataclass(frozen=True)
class Answer:
    """One recorded pair answer: rows are named by their stable key (the table's path), not their position."""

    id: int
    a: str
    b: str
    answer: str
    actor: str
    at: float
    undoes: Optional[int] = None
    action: Optional[int] = None


@dataclass(frozen=True)
class Action:
    """One thing a person did: its kind, who, when, what was shown and decided (`detail`), and the pair answers
    it wrote (none for an undo, which names the action it takes back in `undoes`)."""

    id: int
    kind: str
    actor: str
    at: float
    detail: dict[str, Any]
    undoes: Optional[int] = None


class AnswerLog:
    """The answers of one discovery folder (`answers.sqlite`). `clock` gives the time written with each row."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            cols = {r[1] for r in db.execute("PRAGMA table_info(answers)")}
            if "action" not in cols:  # logs written before group review
                db.execute("ALTER TABLE answers ADD COLUMN action INTEGER")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def record(self, a: str, b: str, answer: str, actor: str = "local") -> Answer:
        """Store one answer (same / different / skip) about the pair (a, b): one action of kind "pair"."""
        aid = self.record_action("pair", [(a, b, answer)], actor)
        with closing(self._connect()) as db:
            row = db.execute("SELECT id, a, b, answer, actor, at, undoes, action FROM answers WHERE action = ?",
                             (aid,)).fetchone()
        return Answer(*row)

    def record_action(self, kind: str, pairs: Sequence[tuple[str, str, str]], actor: str = "local",
                      detail: Optional[dict[str, Any]] = None) -> int:
        """Store one person's action and the pair answers it implies, in one transaction; returns its id."""
        if kind not in ACTION_KINDS:
            raise ConfigError(f"an action is one of {', '.join(ACTION_KINDS)}, got {kind!r}")
        rows = []
        for a, b, answer in pairs:
            if answer not in ANSWERS:
                raise ConfigError(f"an answer is one of {', '.join(ANSWERS)}, got {answer!r}")
            if a == b:
                raise ConfigError("a question needs two different images")
            rows.append((*sorted((str(a), str(b))), answer))
        if not rows:
            raise ConfigError("an action must answer at least one pair")
        at = self.clock()
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")
            aid = int(db.execute("INSERT INTO actions (kind, actor, at, detail) VALUES (?, ?, ?, ?)",
                                 (kind, actor, at, json.dumps(detail or {}, sort_keys=True))).lastrowid)
            db.executemany("INSERT INTO answers (a, b, answer, actor, at, action) VALUES (?, ?, ?, ?, ?, ?)",
                           [(a, b, ans, actor, at, aid) for a, b, ans in rows])
        return aid

    def undo(self, actor: str = "local") -> Optional[Answer]:
        """Take back the latest action not yet undone (every pair answer it wrote); None when there is none.
        Returns the last pair answer taken back."""
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id, a, b, action FROM answers WHERE answer != ? AND id NOT IN "
                             "(SELECT undoes FROM answers WHERE undoes IS NOT NULL) ORDER BY id DESC LIMIT 1",
                             (UNDO,)).fetchone()
            if row is None:
                return None
            at = self.clock()
            if row[3] is None:  # an answer from before actions: taken back alone
                targets = [row[:3]]
            else:
                targets = db.execute("SELECT id, a, b FROM answers WHERE action = ? AND answer != ? ORDER BY id",
                                     (row[3], UNDO)).fetchall()
                db.execute("INSERT INTO actions (kind, actor, at, detail, undoes) VALUES ('undo', ?, ?, '{}', ?)",
                           (actor, at, row[3]))
            last = None
            for tid, a, b in targets:
                cur = db.execute("INSERT INTO answers (a, b, answer, actor, at, undoes, action) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", (a, b, UNDO, actor, at, tid, row[3]))
                last = Answer(int(cur.lastrowid), a, b, UNDO, actor, at, int(tid), row[3])
            return last

    def history(self) -> list[Answer]:
        """Every pair answer, oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, a, b, answer, actor, at, undoes, action FROM answers ORDER BY id").fetchall()
        return [Answer(*r) for r in rows]

    def actions(self) -> list[Action]:
        """Every action (undos included), oldest first: the audit trail of what people did."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, kind, actor, at, detail, undoes FROM actions ORDER BY id").fetchall()
        return [Action(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]

    def actions_in_force(self) -> int:
        """How many actions count now (not undone, undos themselves not counted)."""
        with closing(self._connect()) as db:
            return int(db.execute("SELECT COUNT(*) FROM actions WHERE kind != 'undo' AND id NOT IN "
                                  "(SELECT undoes FROM actions WHERE undoes IS NOT NULL)").fetchone()[0])

    def in_force(self) -> dict[tuple[str, str], Answer]:
        """The answer in force for each pair, with who gave it (the latest one not undone; skips included)."""
        hist = self.history()
        undone = {h.undoes for h in hist if h.undoes is not None}
        out: dict[tuple[str, str], Answer] = {}
        for h in hist:
            if h.answer != UNDO and h.id not in undone:
                out[(h.a, h.b)] = h
        return out

    def current(self) -> dict[tuple[str, str], str]:
        """The answer in force for each pair (the latest one not undone; skips included)."""
        return {pair: h.answer for pair, h in self.in_force().items()}


__all__ = ["AnswerLog", "Answer", "Action", "ACTION_KINDS", "ANSWERS", "SAME", "DIFFERENT", "SKIP", "UNDO"]
