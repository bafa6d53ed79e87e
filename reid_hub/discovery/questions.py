"""Which pair to ask a person about: the grouping decisions whose answer is expected to correct the most pair
relations.

The candidates are the decisions of the average linkage itself: every merge it made (a "different" would undo it:
expected gain (1 - P) * |A| * |B|) and every merge it left undone between two final groups (a "same" would make
it: gain P * |A| * |B|), with P(same) from the groups' average similarity. Each is asked as one pair: the most
typical image of each side (its medoid), so the answer speaks for the groups and not for an outlier. Decisions
already settled by an answer, pairs already asked (skips included) and pairs whose answer follows from the
constraints are never asked.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.sparse as sp

from .grouping import Linkage, Merge

STRATEGIES = ("gain", "random")


@dataclass(frozen=True)
class Question:
    """Are rows `a` and `b` the same individual?"""

    a: int
    b: int
    p_same: float
    gain: float
    kind: str  # "merge" (a merge left undone) or "split" (a merge made)


def medoid(rows: np.ndarray, sim: sp.csr_matrix) -> int:
    """The row with the largest summed similarity to the other rows of the set."""
    if len(rows) == 1:
        return int(rows[0])
    score = np.asarray(sim[rows][:, rows].sum(axis=1)).ravel()
    return int(rows[int(np.argmax(score))])


def rank_questions(link: Linkage, labels: np.ndarray, p_of: Callable[[np.ndarray], np.ndarray],
                   sim: sp.csr_matrix, comp: np.ndarray, blocked: set[tuple[int, int]],
                   asked: set[tuple[int, int]], answered: list[tuple[int, int]], limit: int = 50) -> list[Question]:
    """The `limit` best questions. `labels`: the final groups; `sim`: the symmetric graph similarity (sparse);
    `comp`/`blocked`: the must-link components and the component pairs kept apart; `asked`: row pairs (i < j)
    already asked; `answered`: row pairs with an answer in force (they settle the decisions between their sides)."""
    cands: list[Merge] = link.merges + link.undone
    if not cands:
        return []
    sims = np.array([c.similarity for c in cands])
    p = p_of(sims)
    pairs = np.array([c.left_size * c.right_size for c in cands], float)
    done = np.array([c.done for c in cands])
    gain = np.where(done, 1 - p, p) * pairs
    ans = np.asarray(answered, np.int64).reshape(-1, 2)
    settled_groups = {(min(x, y), max(x, y)) for x, y in zip(labels[ans[:, 0]].tolist(), labels[ans[:, 1]].tolist())}
    out: list[Question] = []
    for k in np.argsort(-gain, kind="stable"):
        c = cands[k]
        left, right = link.members(c.left), link.members(c.right)
        if not c.done:
            gl, gr = int(labels[left[0]]), int(labels[right[0]])
            if gl == gr or (min(gl, gr), max(gl, gr)) in settled_groups:
                continue
        elif len(ans) and (np.isin(ans[:, 0], left) & np.isin(ans[:, 1], right)
                           | np.isin(ans[:, 0], right) & np.isin(ans[:, 1], left)).any():
            continue
        a, b = medoid(left, sim), medoid(right, sim)
        key = (min(a, b), max(a, b))
        ca, cb = int(comp[a]), int(comp[b])
        if key in asked or ca == cb or (min(ca, cb), max(ca, cb)) in blocked:
            continue
        asked = asked | {key}
        out.append(Question(a, b, float(p[k]), float(gain[k]), "split" if c.done else "merge"))
        if len(out) >= limit:
            break
    return out


def random_questions(i: np.ndarray, j: np.ndarray, p: np.ndarray, labels: np.ndarray, comp: np.ndarray,
                     blocked: set[tuple[int, int]], asked: set[tuple[int, int]], limit: int,
                     seed: int = 0) -> list[Question]:
    """The baseline: candidate-graph pairs drawn uniformly among those whose answer is not known yet."""
    ci, cj = comp[i], comp[j]
    ok = ci != cj
    ok &= np.array([(int(x), int(y)) not in asked for x, y in zip(i, j)], dtype=bool)
    if blocked:
        lo, hi = np.minimum(ci, cj), np.maximum(ci, cj)
        ok &= np.array([(int(x), int(y)) not in blocked for x, y in zip(lo, hi)], dtype=bool)
    idx = np.nonzero(ok)[0]
    pick = np.random.default_rng(seed).choice(idx, size=min(limit, len(idx)), replace=False) if len(idx) else idx
    return [Question(int(i[e]), int(j[e]), float(p[e]), 0.0, "split" if labels[i[e]] == labels[j[e]] else "merge")
            for e in pick]


__all__ = ["Question", "rank_questions", "random_questions", "medoid", "STRATEGIES"]
