"""Disjoint sets (union-find with path halving): the one implementation that tracks, bursts, answers and linkage
use to tell which rows belong together."""
from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over 0..n-1."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        """The root of `a`'s set."""
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def union(self, a: int, b: int) -> int:
        """Join the sets of `a` and `b` (`b`'s root goes under `a`'s); returns the joined set's root."""
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra
        return ra

    def components(self) -> np.ndarray:
        """Component id of every element (0..m-1 in order of the roots)."""
        roots = [self.find(a) for a in range(len(self.parent))]
        return np.unique(roots, return_inverse=True)[1]


__all__ = ["UnionFind"]
