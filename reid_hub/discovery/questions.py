"""Which pair to ask a person about: the candidate pairs whose answer is expected to correct the most pair
relations of the current grouping.

For a pair in two different groups A and B the expected gain is P(same) * |A| * |B| (the pairs a "same" would
join), P discounted by how typical each of the two images is of its group; for a pair inside one group it is (1 - P(same)) * |G|^2 / 4 (about what a "different" would split off).
Groups that no answer has touched yet count double, so the questions spread over the collection. Pairs whose
answer already follows from the constraints (one must-link component, or components kept apart) are never asked,
and one pair stands for each pair of groups: the most similar one, whose evidence is easiest to judge.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: how much more a question about a group nobody has answered about is worth
UNSEEN_GROUP_BONUS = 2.0
STRATEGIES = ("gain", "random")


@dataclass(frozen=True)
class Question:
    """Are rows `a` and `b` the same individual?"""

    a: int
    b: int
    p_same: float
    gain: float
    kind: str  # "merge" (the two are in different groups) or "split" (in one group)


def rank_questions(i: np.ndarray, j: np.ndarray, p: np.ndarray, labels: np.ndarray, comp: np.ndarray,
                   blocked: set[tuple[int, int]], touched: set[int], asked: set[tuple[int, int]],
                   settled: set[tuple[int, int]], centrality: np.ndarray,
                   limit: int = 50,
                   strategy: str = "gain", seed: int = 0) -> list[Question]:
    """The `limit` best questions among the candidate pairs (i, j) with P(same) `p`, given the grouping `labels`,
    the must-link components `comp`, the cannot-linked component pairs `blocked`, the groups `touched` by an
    answer, the row pairs already `asked` (i < j; a skipped question is not asked again) and the group pairs
    already `settled` by an answer between them (a < b). `centrality` (per row, in [0, 1]: how typical a row is of
    its group) discounts merge questions whose pair involves a group's outlier: a "same" about an outlier says
    little about its group. `strategy` "random" draws uniformly among the askable pairs (the baseline)."""
    ci, cj = comp[i], comp[j]
    askable = ci != cj
    if asked:
        askable &= np.array([(int(x), int(y)) not in asked for x, y in zip(i, j)], dtype=bool)
    if blocked:
        lo, hi = np.minimum(ci, cj), np.maximum(ci, cj)
        askable &= np.array([(int(x), int(y)) not in blocked for x, y in zip(lo, hi)], dtype=bool)
    idx = np.nonzero(askable)[0]
    if len(idx) == 0:
        return []
    if strategy == "random":
        rng = np.random.default_rng(seed)
        pick = rng.choice(idx, size=min(limit, len(idx)), replace=False)
        return [Question(int(i[e]), int(j[e]), float(p[e]), 0.0,
                         "split" if labels[i[e]] == labels[j[e]] else "merge") for e in pick]
    size = np.bincount(labels).astype(float)
    la, lb = labels[i[idx]], labels[j[idx]]
    same_group = la == lb
    typical = p[idx] * centrality[i[idx]] * centrality[j[idx]]
    gain = np.where(same_group, (1 - p[idx]) * size[la] ** 2 / 4, typical * size[la] * size[lb])
    fresh = np.array([(a not in touched) + (b not in touched) for a, b in zip(la.tolist(), lb.tolist())])
    gain = gain * (1 + (UNSEEN_GROUP_BONUS - 1) * fresh / 2)
    out: list[Question] = []
    seen: set[tuple[int, int]] = set(settled)
    # best gain first; among equal gains the more similar pair
    for e_pos in np.lexsort((-p[idx], -gain)):
        e = idx[e_pos]
        key = (int(min(la[e_pos], lb[e_pos])), int(max(la[e_pos], lb[e_pos])))
        if key in seen and key[0] != key[1]:
            continue
        seen.add(key)
        out.append(Question(int(i[e]), int(j[e]), float(p[e]), float(gain[e_pos]),
                            "split" if same_group[e_pos] else "merge"))
        if len(out) >= limit:
            break
    return out


__all__ = ["Question", "rank_questions", "STRATEGIES"]
