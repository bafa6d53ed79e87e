"""Pair constraints on a collection: must-link (one animal: a track, a burst, a person's "same") and cannot-link
(different animals: one frame, a person's "different"), with the closure that follows from them."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..data.union_find import UnionFind

log = logging.getLogger(__name__)


@dataclass
class Constraints:
    """Must-link and cannot-link pairs of row indices."""

    n: int
    must: set[tuple[int, int]] = field(default_factory=set)
    cannot: set[tuple[int, int]] = field(default_factory=set)

    @staticmethod
    def _pair(a: int, b: int) -> tuple[int, int]:
        return (int(a), int(b)) if a < b else (int(b), int(a))

    def add_must(self, a: int, b: int) -> None:
        if a != b:
            p = self._pair(a, b)
            self.cannot.discard(p)
            self.must.add(p)

    def add_cannot(self, a: int, b: int) -> None:
        if a != b:
            p = self._pair(a, b)
            self.must.discard(p)
            self.cannot.add(p)

    def remove(self, a: int, b: int) -> None:
        p = self._pair(a, b)
        self.must.discard(p)
        self.cannot.discard(p)

    def copy(self) -> "Constraints":
        return Constraints(self.n, set(self.must), set(self.cannot))

    def components(self) -> np.ndarray:
        """The must-link components: every row's component id."""
        uf = UnionFind(self.n)
        for a, b in self.must:
            uf.union(a, b)
        return uf.components()

    def cannot_between(self, comp: np.ndarray) -> set[tuple[int, int]]:
        """Cannot-links lifted to must-link components; a cannot-link inside one component (a contradiction) is
        dropped with a warning, the must-links win."""
        out: set[tuple[int, int]] = set()
        for a, b in self.cannot:
            ca, cb = int(comp[a]), int(comp[b])
            if ca == cb:
                log.warning("rows %d and %d are linked as one animal and as different animals; keeping 'same'", a, b)
                continue
            out.add(self._pair(ca, cb))
        return out

    @classmethod
    def from_columns(cls, table: Any, track_column: Optional[str] = None,
                     frame_column: Optional[str] = None) -> "Constraints":
        """Rows sharing a track value are one animal (a chain of must-links); rows sharing a frame value are
        different animals (cannot-links between every two of them). Empty values link nothing."""
        c = cls(len(table))
        if track_column:
            for rows in _groups(table[track_column]):
                for a, b in zip(rows[:-1], rows[1:]):
                    c.add_must(a, b)
        if frame_column:
            for rows in _groups(table[frame_column]):
                for x in range(len(rows)):
                    for y in range(x + 1, len(rows)):
                        c.cannot.add(cls._pair(rows[x], rows[y]))
        return c


def _groups(values: Sequence[Any]) -> Iterable[list[int]]:
    """Row lists of each non-empty value that occurs more than once."""
    by: dict[str, list[int]] = {}
    for r, v in enumerate(values):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        key = str(v).strip()
        if key and key.lower() != "nan":
            by.setdefault(key, []).append(r)
    return [rows for rows in by.values() if len(rows) > 1]


__all__ = ["Constraints"]
