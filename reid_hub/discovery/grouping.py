"""Constrained average-linkage clustering on a sparse candidate graph.

Must-link components start as one group; two groups merge while the average similarity between them (pairs
outside the graph count as `floor`) is at least the threshold, never across a cannot-link. Ties break by pair
order, so the result is deterministic.
"""
from __future__ import annotations

import heapq
from typing import Optional

import numpy as np

from .constraints import Constraints


def constrained_average_linkage(n: int, i: np.ndarray, j: np.ndarray, sim: np.ndarray, threshold: float,
                                constraints: Optional[Constraints] = None, floor: float = 0.0) -> np.ndarray:
    """Group label (0..m-1, in order of first row) of each of `n` rows."""
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

    def avg(a: int, b: int) -> float:
        tot, cnt = links[a][b]
        pairs = size[a] * size[b]
        return (tot + floor * (pairs - cnt)) / pairs

    heap = [(-avg(a, b), a, b, 0, 0) for a in range(m) for b in links[a] if a < b and b not in blocked[a]]
    heapq.heapify(heap)
    parent = list(range(m))
    while heap:
        neg, a, b, va, vb = heapq.heappop(heap)
        if -neg < threshold:
            break
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb or b in blocked[a]:
            continue
        if len(links[a]) < len(links[b]):
            a, b = b, a  # keep the group with more neighbours, fold the other into it
        alive[b] = False
        parent[b] = a
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
    root = np.array([_find(parent, g) for g in range(m)], dtype=np.int64)
    labels = root[comp] if n else np.zeros(0, np.int64)
    _, first = np.unique(labels, return_index=True)
    order = {int(labels[f]): r for r, f in enumerate(sorted(first))}
    return np.array([order[int(x)] for x in labels], dtype=np.int64)


def _find(parent: list[int], a: int) -> int:
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a


__all__ = ["constrained_average_linkage"]
