"""Constrained average-linkage clustering on a sparse candidate graph.

Must-link components start as one group; two groups merge while the average similarity between them (pairs
outside the graph count as `floor`) is at least the threshold, never across a cannot-link. Ties break by pair
order, so the result is deterministic. The result keeps its dendrogram (every merge made, with its similarity)
and the merges left undone (pairs of final groups with their similarity): the decisions a person may revisit.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data.union_find import UnionFind
from .constraints import Constraints


@dataclass(frozen=True)
class Merge:
    """Two dendrogram nodes joined (`done`) or left apart (not done) at average similarity `similarity`.

    Nodes 0..m-1 are the must-link components; node m + k is the k-th merge made."""

    left: int
    right: int
    similarity: float
    left_size: int
    right_size: int
    done: bool


@dataclass
class Linkage:
    """Group labels (0..m-1 in order of first row), the merges made and the best merges left undone."""

    labels: np.ndarray
    components: np.ndarray
    merges: list[Merge]
    undone: list[Merge]

    def members(self, node: int) -> np.ndarray:
        """Rows under a dendrogram node."""
        m = int(self.components.max()) + 1 if len(self.components) else 0
        stack, leaves = [node], []
        while stack:
            x = stack.pop()
            if x < m:
                leaves.append(x)
            else:
                mg = self.merges[x - m]
                stack.extend((mg.left, mg.right))
        return np.nonzero(np.isin(self.components, leaves))[0]


def linkage(n: int, i: np.ndarray, j: np.ndarray, sim: np.ndarray, threshold: float,
            constraints: Optional[Constraints] = None, floor: float = 0.0) -> Linkage:
    """Constrained average linkage of `n` rows over the graph pairs (i, j) with similarities `sim`."""
    cons = constraints or Constraints(n)
    comp = cons.components()
    m = int(comp.max()) + 1 if n else 0
    size = np.bincount(comp, minlength=m).astype(np.int64)
    # neighbour sums between groups: links[a][b] = [sum of sims, number of graph pairs]
    links: list[dict[int, list[float]]] = [dict() for _ in range(m)]
    for a, b, s in zip(comp[i].tolist(), comp[j].tolist(), np.asarray(sim, float).tolist()):
        if a == b:
            continue
        e = links[a].get(b)
        if e is None:
            links[a][b] = links[b][a] = e = [0.0, 0]
        e[0] += s
        e[1] += 1
    blocked: list[set[int]] = [set() for _ in range(m)]
    for a, b in cons.cannot_between(comp):
        blocked[a].add(b)
        blocked[b].add(a)
    version = [0] * m
    alive = [True] * m
    node = list(range(m))  # the dendrogram node each live group currently is
    merges: list[Merge] = []

    def avg(a: int, b: int) -> float:
        tot, cnt = links[a][b]
        pairs = size[a] * size[b]
        return (tot + floor * (pairs - cnt)) / pairs

    heap = [(-avg(a, b), a, b, 0, 0) for a in range(m) for b in links[a] if a < b and b not in blocked[a]]
    heapq.heapify(heap)
    uf = UnionFind(m)
    while heap:
        neg, a, b, va, vb = heap[0]
        if -neg < threshold:
            break
        heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb or b in blocked[a]:
            continue
        merges.append(Merge(node[a], node[b], -neg, int(size[a]), int(size[b]), True))
        if len(links[a]) < len(links[b]):
            a, b = b, a  # keep the group with more neighbours, fold the other into it
        node[a] = m + len(merges) - 1
        alive[b] = False
        uf.union(a, b)  # both are live groups: b joins a
        size[a] += size[b]
        del links[a][b]
        del links[b][a]
        for c, (tot, cnt) in links[b].items():
            e = links[a].get(c)
            if e is None:
                links[a][c] = links[c][a] = e = [0.0, 0]
            e[0] += tot
            e[1] += cnt
            del links[c][b]
        links[b] = {}
        for c in blocked[b]:
            blocked[c].discard(b)
            blocked[c].add(a)
        blocked[a] |= blocked[b]
        version[a] += 1
        for c in links[a]:
            if c not in blocked[a]:
                x, y = (a, c) if a < c else (c, a)
                heapq.heappush(heap, (-avg(a, c), x, y, version[x], version[y]))
    undone = [Merge(node[a], node[c], avg(a, c), int(size[a]), int(size[c]), False)
              for a in range(m) if alive[a] for c in links[a] if a < c and alive[c] and c not in blocked[a]]
    root = np.array([uf.find(g) for g in range(m)], dtype=np.int64)
    labels = root[comp] if n else np.zeros(0, np.int64)
    return Linkage(by_first_row(labels), comp, merges, undone)


def by_first_row(labels: np.ndarray) -> np.ndarray:
    """The same grouping numbered 0..m-1 in order of each group's first row."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return labels.astype(np.int64)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


def constrained_average_linkage(n: int, i: np.ndarray, j: np.ndarray, sim: np.ndarray, threshold: float,
                                constraints: Optional[Constraints] = None, floor: float = 0.0) -> np.ndarray:
    """Group label of each of `n` rows (see `linkage`)."""
    return linkage(n, i, j, sim, threshold, constraints, floor).labels


__all__ = ["Merge", "Linkage", "linkage", "constrained_average_linkage", "by_first_row"]
