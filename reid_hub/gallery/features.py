"""The gallery's local features: each image's keypoints and descriptors per matcher (stored at enrollment), and the
verified scores of image pairs (recalibration's cache). A part of the store: it owns these two tables and all their
SQL, inside the gallery's database and transactions."""
from __future__ import annotations

import sqlite3
from typing import Any, Callable, Sequence

from ..scoring.matchers import LocalFeatures, LocalMatcher, create_matcher

SCHEMA = """
CREATE TABLE IF NOT EXISTS local_features (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE, matcher TEXT NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (image_id, matcher));
CREATE TABLE IF NOT EXISTS pair_scores (
    a INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    b INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE, matcher TEXT NOT NULL, score REAL NOT NULL,
    PRIMARY KEY (a, b, matcher))
"""
#: SQLite's bound-parameter limit, per statement
CHUNK = 900


class FeatureStore:
    """Local features and verified pair scores of one gallery, read from its connection `db` and written in its
    transactions (`transaction()`, or the caller's `db` inside one)."""

    def __init__(self, db: sqlite3.Connection, transaction: Callable[[], Any]) -> None:
        self.db, self.transaction = db, transaction
        self._matchers: dict[str, LocalMatcher] = {}

    def matcher(self, name: str) -> LocalMatcher:
        """The matcher object `name` (created once per open gallery)."""
        if name not in self._matchers:
            self._matchers[name] = create_matcher(name)
        return self._matchers[name]

    def stored(self, image_ids: Sequence[int], matcher: str) -> dict[int, LocalFeatures]:
        """Local features stored for these images with this matcher (images without are absent)."""
        out: dict[int, LocalFeatures] = {}
        ids = [int(i) for i in image_ids]
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            for image_id, blob in self.db.execute(
                    f"SELECT image_id, data FROM local_features WHERE matcher=? AND image_id IN "
                    f"({','.join('?' * len(chunk))})", [matcher, *chunk]):
                out[int(image_id)] = LocalFeatures.from_bytes(blob)
        return out

    def present(self) -> set[tuple[int, str]]:
        """(image id, matcher) of every stored feature set."""
        return {(int(i), m) for i, m in self.db.execute("SELECT image_id, matcher FROM local_features")}

    def put(self, image_id: int, matcher: str, features: LocalFeatures) -> None:
        """Keep one image's features for `matcher` (replacing what it had; its cached pair scores go)."""
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO local_features VALUES (?, ?, ?)",
                       (int(image_id), matcher, features.to_bytes()))
            db.execute("DELETE FROM pair_scores WHERE matcher=? AND (a=? OR b=?)",
                       (matcher, int(image_id), int(image_id)))

    def put_many(self, db: sqlite3.Connection, image_ids: Sequence[int], matcher: str, blobs: Sequence[bytes]) -> None:
        """Serialised features of new images, inside the caller's transaction `db` (an enrollment)."""
        db.executemany("INSERT OR REPLACE INTO local_features VALUES (?, ?, ?)",
                       [(int(i), matcher, b) for i, b in zip(image_ids, blobs)])

    def pair_scores(self, pairs: Sequence[tuple[int, int]], matcher: str) -> dict[tuple[int, int], float]:
        """Local scores of image pairs verified before with `matcher`, keyed (a, b) with a < b; pairs never
        verified are absent."""
        want = {(min(a, b), max(a, b)) for a, b in pairs}
        lo = sorted({a for a, _ in want})
        out: dict[tuple[int, int], float] = {}
        for start in range(0, len(lo), CHUNK):
            chunk = lo[start:start + CHUNK]
            for a, b, v in self.db.execute(f"SELECT a, b, score FROM pair_scores WHERE matcher=? AND a IN "
                                           f"({','.join('?' * len(chunk))})", [matcher, *chunk]):
                if (a, b) in want:
                    out[(int(a), int(b))] = float(v)
        return out

    def store_pair_scores(self, scores: dict[tuple[int, int], float], matcher: str) -> None:
        """Keep verified pair scores for `matcher` (keys as `pair_scores` gives them)."""
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO pair_scores VALUES (?, ?, ?, ?)",
                           [(int(a), int(b), matcher, float(v)) for (a, b), v in scores.items()])


__all__ = ["FeatureStore", "SCHEMA"]
