"""People's answers to pair questions, kept in SQLite: one row per action (same, different, skip, undo) with who
and when, so the log is its own audit trail and the current answers are a replay of it. Every write is one
transaction: an acknowledged answer survives a crash."""
from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

SAME, DIFFERENT, SKIP, UNDO = "same", "different", "skip", "undo"
ANSWERS = (SAME, DIFFERENT, SKIP)
SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT, a TEXT NOT NULL, b TEXT NOT NULL, answer TEXT NOT NULL,
    actor TEXT NOT NULL, at REAL NOT NULL, undoes INTEGER);
"""


@dataclass(frozen=True)
class Answer:
    """One recorded action: rows are named by their stable key (the table's path), not their position."""

    id: int
    a: str
    b: str
    answer: str
    actor: str
    at: float
    undoes: Optional[int] = None


class AnswerLog:
    """The answers of one discovery folder (`answers.sqlite`)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        return db

    def record(self, a: str, b: str, answer: str, actor: str = "local") -> Answer:
        """Store one answer (same / different / skip) about the pair (a, b)."""
        if answer not in ANSWERS:
            raise ConfigError(f"an answer is one of {', '.join(ANSWERS)}, got {answer!r}")
        if a == b:
            raise ConfigError("a question needs two different images")
        a, b = sorted((str(a), str(b)))
        at = time.time()
        with closing(self._connect()) as db, db:
            cur = db.execute("INSERT INTO answers (a, b, answer, actor, at) VALUES (?, ?, ?, ?, ?)",
                             (a, b, answer, actor, at))
            return Answer(int(cur.lastrowid), a, b, answer, actor, at)

    def undo(self, actor: str = "local") -> Optional[Answer]:
        """Take back the latest answer not yet undone; None when there is none."""
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT id, a, b FROM answers WHERE answer != ? AND id NOT IN "
                             "(SELECT undoes FROM answers WHERE undoes IS NOT NULL) ORDER BY id DESC LIMIT 1",
                             (UNDO,)).fetchone()
            if row is None:
                return None
            at = time.time()
            cur = db.execute("INSERT INTO answers (a, b, answer, actor, at, undoes) VALUES (?, ?, ?, ?, ?, ?)",
                             (row[1], row[2], UNDO, actor, at, row[0]))
            return Answer(int(cur.lastrowid), row[1], row[2], UNDO, actor, at, int(row[0]))

    def history(self) -> list[Answer]:
        """Every action, oldest first."""
        with closing(self._connect()) as db:
            rows = db.execute("SELECT id, a, b, answer, actor, at, undoes FROM answers ORDER BY id").fetchall()
        return [Answer(*r) for r in rows]

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


__all__ = ["AnswerLog", "Answer", "ANSWERS", "SAME", "DIFFERENT", "SKIP", "UNDO"]
