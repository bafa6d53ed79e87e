"""The one coarse-to-fine ranker: a global shortlist of images per query, local-feature scores for it, calibrated
P(same individual), and a ranking of individuals (each by its best image).

Gallery search (global only), identification (verified and calibrated), clip assignment (cluster prototypes) and
evaluation (`evaluation.scorers.FusedScorer`, a table against itself) all rank through `Ranker`; they differ only in
where the shortlist comes from (a FAISS index or a similarity matrix), who owns an image, and whether local
features and a calibration are at hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .fusion import FusionCalibration, LocalScores, shortlist

#: (queries (n, d), depth) -> (scores (n, depth), image ids (n, depth), -1 where fewer)
Search = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]
#: (query row, owner) -> the calibration that scores that pair (None: uncalibrated)
CalibrationOf = Callable[[int, Any], Optional[FusionCalibration]]


@dataclass
class Candidates:
    """Shortlisted (query, image) pairs, one entry per pair, with every score the ranking used."""

    query: np.ndarray
    image: np.ndarray
    owner: np.ndarray
    global_score: np.ndarray
    local_score: np.ndarray
    p_global: np.ndarray
    p_local: np.ndarray
    p_fused: np.ndarray

    def __len__(self) -> int:
        return len(self.query)

    @property
    def probability(self) -> np.ndarray:
        """P(same individual) of each pair: fused when it has a local score, else the global calibration alone
        (NaN when uncalibrated)."""
        return np.where(np.isnan(self.local_score), self.p_global, self.p_fused)

    @property
    def key(self) -> np.ndarray:
        """What ranks the pairs: the probability where there is one, else the global score."""
        p = self.probability
        return np.where(np.isnan(p), self.global_score, p)

    def best_per_owner(self, queries: int, k: int, per_owner: int = 1) -> list[list[tuple[Any, np.ndarray]]]:
        """For each of the first `queries` queries, its `k` best owners, best first, each with the positions of its
        `per_owner` best pairs (ties keep the shortlist's order). One sort for every query."""
        order = np.lexsort((-self.key, self.query))  # by query, then best first; lexsort is stable
        plans: list[dict[Any, list[int]]] = [{} for _ in range(queries)]
        for r, q, o in zip(order.tolist(), self.query[order].tolist(), self.owner[order].tolist()):
            if q >= queries:
                continue
            plan = plans[q]
            got = plan.get(o)
            if got is None:
                if len(plan) < k:
                    plan[o] = [r]
            elif len(got) < per_owner:
                got.append(r)
        return [[(o, np.array(rs, dtype=np.int64)) for o, rs in plan.items()] for plan in plans]


class Ranker:
    """Ranks candidates for queries: `search` gives the global shortlist, `owner_of` maps image ids to their
    individual (dropping ids it does not know: -1 padding, images deleted since), `local` verifies pairs and
    `calibration` turns scores into P(same individual); the last two are optional. `local` is fusion's
    `LocalScores` (query rows, image ids) -> scores, NaN where an image has no local features."""

    def __init__(self, search: Search, owner_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 local: Optional[LocalScores] = None, calibration: Optional[CalibrationOf] = None) -> None:
        self.search, self.owner_of, self.local, self.calibration = search, owner_of, local, calibration

    def shortlist(self, queries: np.ndarray, depth: int) -> Candidates:
        """The `depth` best images of each query by the global score (pairs only, nothing verified yet)."""
        scores, ids = self.search(queries, depth)
        qi = np.repeat(np.arange(len(scores)), scores.shape[1] if scores.ndim == 2 else 0)
        ids, scores = ids.reshape(-1), scores.reshape(-1).astype(np.float64)
        keep, owner = self.owner_of(ids)
        nan = np.full(int(keep.sum()), np.nan)
        return Candidates(qi[keep], ids[keep], owner, scores[keep], nan.copy(), nan.copy(), nan.copy(), nan.copy())

    def verify(self, cands: Candidates) -> Candidates:
        """Local scores of the shortlisted pairs (left NaN without a local scorer)."""
        if self.local is not None and len(cands):
            cands.local_score = np.asarray(self.local(cands.query, cands.image), dtype=np.float64)
        return cands

    def calibrate(self, cands: Candidates) -> Candidates:
        """P(same individual) of every pair from the calibration of its (query, owner); a pair without a local score
        is scored by the global calibration alone."""
        if self.calibration is None or not len(cands):
            return cands
        groups: dict[int, list[int]] = {}
        cal_of: dict[int, FusionCalibration] = {}
        for r, (q, o) in enumerate(zip(cands.query.tolist(), cands.owner.tolist())):
            cal = self.calibration(int(q), o)
            if cal is not None:
                groups.setdefault(id(cal), []).append(r)
                cal_of[id(cal)] = cal
        for key, rows in groups.items():
            rows_a = np.array(rows, dtype=np.int64)
            loc = np.nan_to_num(cands.local_score[rows_a], nan=0.0)
            p = cal_of[key].probabilities(cands.global_score[rows_a], loc)
            cands.p_global[rows_a], cands.p_local[rows_a] = p["global"], p["local"]
            cands.p_fused[rows_a] = p["fused"]
        return cands

    def rank(self, queries: np.ndarray, depth: int, verify: bool = True) -> Candidates:
        """Shortlist, verify (when `verify` and a local scorer is set) and calibrate, in one call."""
        cands = self.shortlist(queries, depth)
        if verify:
            cands = self.verify(cands)
        return self.calibrate(cands)


def matrix_search(sim: np.ndarray, groups: Optional[Sequence[Any]] = None) -> Search:
    """A `Search` over a precomputed (n, n) similarity matrix of a table against itself: a query never returns itself,
    nor rows sharing its `groups` value (e.g. the same camera), nor -inf entries."""
    def search(rows: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        cand = shortlist(sim, depth, groups)[np.asarray(rows, dtype=np.int64)]
        score = np.where(cand >= 0, sim[np.asarray(rows)[:, None], np.maximum(cand, 0)], -np.inf)
        return score, cand
    return search


def labelled_pairs(global_sim: np.ndarray, labels: Sequence[Any], local_scores: LocalScores, depth: int,
                   groups: Optional[Sequence[Any]] = None) -> dict[str, np.ndarray]:
    """Every labelled image of a table against its top-`depth` global candidates among the others (the Ranker's
    shortlist over the similarity matrix, verified by `local_scores`): query, candidate, both scores, same. What
    calibrations are fitted on."""
    labels = np.asarray(labels)
    ranker = Ranker(matrix_search(global_sim, groups), lambda ids: (ids >= 0, ids[ids >= 0]), local_scores)
    cands = ranker.rank(np.arange(len(labels)), depth)
    return {"query": cands.query, "candidate": cands.image, "global": cands.global_score,
            "local": cands.local_score, "same": labels[cands.query] == labels[cands.image]}


__all__ = ["Candidates", "Ranker", "matrix_search", "labelled_pairs", "Search", "LocalScores", "CalibrationOf"]
