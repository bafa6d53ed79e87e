"""The review proposals of a gallery: their table and every statement on it.

A proposal is an identity decision waiting for (or taken by) a person: the query (its embeddings, frames and boxes),
its ranked candidates with P(same), the suggested decision, the candidates a reviewer rejected, the members a
reviewer took out (images of a clip cluster or a discovered group that are not the animal), the outcome, and a
version that makes two racing decisions conflict instead of both landing. The table lives in the gallery's database
so that a decision commits in one transaction with the identity change it makes (through the store's methods) and
its audit row; `ProposalBook` is the only code that reads or writes it.
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from ..errors import ConfigError, ConflictError, GalleryError
from .store import Gallery

PENDING, CONFIRMED, MINTED, AUTO = "pending", "confirmed", "new", "auto-accepted"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, suggestion TEXT NOT NULL,
    species TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', video TEXT, camera TEXT, cluster TEXT,
    embeddings BLOB NOT NULL, n INTEGER NOT NULL, frames TEXT, boxes TEXT, local_features TEXT,
    candidates TEXT NOT NULL, rejected TEXT NOT NULL DEFAULT '[]', probability REAL,
    outcome TEXT, version INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, decided_at REAL);
CREATE INDEX IF NOT EXISTS proposals_status ON proposals(status, id)
"""
_COLS = ("id, status, suggestion, species, source, video, camera, cluster, n, candidates, rejected, probability, "
         "outcome, version, created_at, decided_at, taken_out")


@dataclass
class Proposal:
    """A pending (or decided) identity decision."""

    id: int
    status: str
    suggestion: str
    species: str
    source: str
    video: Optional[str]
    camera: Optional[str]
    cluster: Optional[str]
    n: int
    candidates: list[dict[str, Any]]
    rejected: list[str]
    probability: Optional[float]
    outcome: Optional[dict[str, Any]]
    version: int
    created_at: float
    decided_at: Optional[float]
    taken_out: list[int]

    @property
    def kept(self) -> list[int]:
        """Positions of the members still in the proposal (not taken out)."""
        out = set(self.taken_out)
        return [k for k in range(self.n) if k not in out]

    @property
    def current(self) -> Optional[dict[str, Any]]:
        """The best candidate not rejected yet (what the reviewer is shown)."""
        return next((c for c in self.candidates if c["individual_id"] not in self.rejected), None)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["current"] = self.current
        return d


def _proposal(r: Sequence[Any]) -> Proposal:
    return Proposal(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], json.loads(r[9]), json.loads(r[10]), r[11],
                    json.loads(r[12]) if r[12] else None, r[13], r[14], r[15], json.loads(r[16] or "[]"))


class ProposalBook:
    """The proposals of one gallery. Writes take the caller's transaction (`gallery.transaction()`), so that a
    decision, its identity change and its audit row commit together."""

    def __init__(self, gallery: Gallery) -> None:
        self.gallery = gallery
        with gallery.transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if "taken_out" not in {r[1] for r in db.execute("PRAGMA table_info(proposals)")}:  # older galleries
                db.execute("ALTER TABLE proposals ADD COLUMN taken_out TEXT NOT NULL DEFAULT '[]'")

    # -- reads --------------------------------------------------------------------------------------------------
    def get(self, proposal_id: int) -> Proposal:
        r = self.gallery.db.execute(f"SELECT {_COLS} FROM proposals WHERE id=?", (int(proposal_id),)).fetchone()
        if r is None:
            raise GalleryError(f"no proposal {proposal_id} in {self.gallery.folder}")
        return _proposal(r)

    def page(self, status: str = PENDING, offset: int = 0, limit: int = 50) -> tuple[list[Proposal], int]:
        """A page of proposals with this status (oldest first) and how many there are in all."""
        if limit < 1 or offset < 0:
            raise ConfigError("limit must be at least 1 and offset at least 0")
        db = self.gallery.db
        total = db.execute("SELECT COUNT(*) FROM proposals WHERE status=?", (status,)).fetchone()[0]
        rows = db.execute(f"SELECT {_COLS} FROM proposals WHERE status=? ORDER BY id LIMIT ? OFFSET ?",
                          (status, int(limit), int(offset))).fetchall()
        return [_proposal(r) for r in rows], int(total)

    def query(self, proposal: Proposal) -> tuple[np.ndarray, Optional[list], Optional[list]]:
        """A proposal's embeddings (n, D), frames and boxes."""
        blob, frames, boxes = self.gallery.db.execute("SELECT embeddings, frames, boxes FROM proposals WHERE id=?",
                                                      (proposal.id,)).fetchone()
        emb = np.frombuffer(blob, dtype=np.float32).reshape(proposal.n, -1)
        return emb, json.loads(frames or "null"), json.loads(boxes or "null")

    def reviewed(self) -> list[Proposal]:
        """Every proposal a person (or the policy) said something about: decided ones, and pending ones with
        rejected candidates."""
        rows = self.gallery.db.execute(f"SELECT {_COLS} FROM proposals WHERE status != ? OR rejected != '[]' "
                                       "ORDER BY id", (PENDING,)).fetchall()
        return [_proposal(r) for r in rows]

    # -- writes, inside the caller's transaction ----------------------------------------------------------------
    def add(self, db: sqlite3.Connection, suggestion: str, species: str, source: str, video: Optional[str],
            camera: Optional[str], cluster: Optional[str], embeddings: np.ndarray, frames: Optional[Sequence[int]],
            boxes: Optional[Sequence[Any]], candidates: list[dict[str, Any]], probability: Optional[float]) -> int:
        """A new pending proposal; returns its id."""
        cur = db.execute(
            "INSERT INTO proposals (status, suggestion, species, source, video, camera, cluster, embeddings, n, frames, "
            "boxes, candidates, probability, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (PENDING, suggestion, species, source, video, camera, cluster, embeddings.astype(np.float32).tobytes(),
             len(embeddings), json.dumps([int(f) for f in frames]) if frames is not None else None,
             json.dumps([[float(v) for v in b] for b in boxes]) if boxes is not None else None,
             json.dumps(candidates, default=float), probability, time.time()))
        return int(cur.lastrowid)

    def claim(self, db: sqlite3.Connection, proposal_id: int, version: int, status: str) -> None:
        """Decide a pending proposal (its new `status`), first thing in the decision's transaction: ConflictError
        when someone decided or changed it meanwhile, before any identity change is written."""
        cur = db.execute("UPDATE proposals SET status=?, version=version+1, decided_at=? WHERE id=? AND status=? "
                         "AND version=?", (status, time.time(), int(proposal_id), PENDING, int(version)))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {proposal_id} was decided by someone else meanwhile")

    def set_outcome(self, db: sqlite3.Connection, proposal_id: int, outcome: dict[str, Any]) -> None:
        """What a claimed decision did (individual, images)."""
        db.execute("UPDATE proposals SET outcome=? WHERE id=?", (json.dumps(outcome), int(proposal_id)))

    def set_rejected(self, db: sqlite3.Connection, proposal: Proposal, rejected: list[str]) -> None:
        """The candidates a reviewer rejected so far, on a pending proposal."""
        cur = db.execute("UPDATE proposals SET rejected=?, version=version+1 WHERE id=? AND version=? AND status=?",
                         (json.dumps(rejected), proposal.id, proposal.version, PENDING))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {proposal.id} was changed by someone else meanwhile")

    def set_taken_out(self, db: sqlite3.Connection, proposal: Proposal, taken_out: list[int]) -> None:
        """The members a reviewer took out so far (positions), on a pending proposal."""
        cur = db.execute("UPDATE proposals SET taken_out=?, version=version+1 WHERE id=? AND version=? AND status=?",
                         (json.dumps(sorted(int(k) for k in taken_out)), proposal.id, proposal.version, PENDING))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {proposal.id} was changed by someone else meanwhile")

    def reopen(self, db: sqlite3.Connection, proposal: Proposal) -> None:
        """A decided proposal pending again (its decision undone)."""
        cur = db.execute("UPDATE proposals SET status=?, outcome=NULL, version=version+1, decided_at=NULL "
                         "WHERE id=? AND version=?", (PENDING, proposal.id, proposal.version))
        if cur.rowcount != 1:
            raise ConflictError(f"proposal {proposal.id} was changed by someone else meanwhile")


__all__ = ["Proposal", "ProposalBook", "PENDING", "CONFIRMED", "MINTED", "AUTO"]
