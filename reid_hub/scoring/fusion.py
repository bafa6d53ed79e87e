"""Fusion for coarse-to-fine scoring (the ranking itself is scoring.ranker): the global and local scores of
shortlisted pairs, both calibrated to P(same individual) (as WildFusion does) and fused: a weighted sum of their
log-odds, the weights chosen per species by the ranking they give on out-of-fold labelled pairs (WildFusion's plain
mean lets a matcher that is blind on a species drag its ranking down), recalibrated so the fused number is itself a
probability.

Calibration is fitted on the pairs a search actually re-scores: each labelled image against its
top-B global candidates among the other labelled images. Per species, with a global fallback.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import DataError
from .calibration import (ScoreCalibrator, calibrate_threshold, excluded_pairs, expected_calibration_error,
                          individual_folds)

log = logging.getLogger(__name__)

#: the key of the calibration used for species without their own
ANY_SPECIES = "*"


def shortlist(sim: np.ndarray, depth: int, groups: Optional[Sequence[Any]] = None) -> np.ndarray:
    """(n, min(depth, n-1)) column indices of each row's best-scoring candidates (never itself nor, with
    `groups`, an image of its own group), best first; -1 where fewer candidates exist."""
    n = len(sim)
    s = np.asarray(sim, np.float64).copy()
    s[excluded_pairs(n, groups)] = -np.inf
    depth = max(1, min(depth, n - 1))
    idx = np.argsort(-s, axis=1, kind="stable")[:, :depth]
    return np.where(np.isfinite(np.take_along_axis(s, idx, 1)), idx, -1)


@dataclass
class FusionCalibration:
    """P(same individual) from a global score, a local (verified matches) score, and their fusion, plus
    the open-set threshold on the fused probability of the best candidate."""

    global_: ScoreCalibrator
    local: ScoreCalibrator
    fused: ScoreCalibrator
    weights: tuple[float, float] = (0.5, 0.5)
    new_threshold: float = 0.5
    report: dict[str, Any] = field(default_factory=dict)

    def probabilities(self, global_scores: Any, local_scores: Any) -> dict[str, np.ndarray]:
        pg, pl = self.global_(global_scores), self.local(local_scores)
        return {"global": pg, "local": pl, "fused": self.fused(_combine(pg, pl, self.weights))}

    def to_dict(self) -> dict[str, Any]:
        return {"global": self.global_.to_dict(), "local": self.local.to_dict(), "fused": self.fused.to_dict(),
                "weights": list(self.weights), "new_threshold": self.new_threshold, "report": self.report}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FusionCalibration":
        return cls(ScoreCalibrator.from_dict(d["global"]), ScoreCalibrator.from_dict(d["local"]),
                   ScoreCalibrator.from_dict(d["fused"]), tuple(d.get("weights", (0.5, 0.5))),
                   float(d.get("new_threshold", 0.5)), d.get("report", {}))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _combine(pg: np.ndarray, pl: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Weighted evidence of the two calibrated probabilities (a weighted sum of their log-odds)."""
    return weights[0] * _logit(pg) + weights[1] * _logit(pl)


def _out_of_fold(scores: np.ndarray, same: np.ndarray, query: np.ndarray, kind: str) -> np.ndarray:
    """Calibrated probabilities of each pair from a calibrator fitted on the other half of the queries
    (in-sample where a half lacks pairs of both kinds)."""
    fold = (np.asarray(query) % 2).astype(bool)
    out = np.empty(len(scores))
    for k in (True, False):
        train, test = fold != k, fold == k
        t = same[train]
        fit_on = train if t.any() and not t.all() else np.ones(len(same), bool)
        out[test] = ScoreCalibrator.fit(scores[fit_on], same[fit_on], kind)(scores[test])
    return out


#: below this many calibration queries the weights are not chosen but equal
MIN_QUERIES_TO_CHOOSE = 30
#: local-evidence weights tried (global weight 1), plus local evidence alone
LOCAL_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)


def _top1(score: np.ndarray, same: np.ndarray, query: np.ndarray) -> float:
    """Share of queries whose best-scored candidate is the same individual."""
    order = np.lexsort((-score, query))
    first = np.ones(len(order), bool)
    first[1:] = query[order][1:] != query[order][:-1]
    return float(same[order][first].mean()) if len(order) else 0.0


def _fusion_weights(pg: np.ndarray, pl: np.ndarray, same: np.ndarray, query: np.ndarray) -> tuple[float, float]:
    """How much each calibrated score is worth, chosen by the ranking it gives on out-of-fold pairs (top-1
    of each query's shortlist; ties go to the smaller local weight): a matcher that does not separate a
    species' individuals gets weight 0, so fusing never costs the embedding's ranking on the pairs."""
    n_queries = len(np.unique(query))
    if n_queries < MIN_QUERIES_TO_CHOOSE:  # too few to tell: both evidences count alike, as in WildFusion
        return (1.0, 1.0)
    base = _top1(_combine(pg, pl, (1.0, 0.0)), same, query)
    # local evidence must win clearly (2% of the queries, at least two) before it may reorder the embedding's
    # ranking: on a few calibration identities a smaller gain is noise
    need = base + max(0.02, 2.0 / max(1, n_queries))
    best, best_acc = (1.0, 0.0), base
    for wg, wl in [(1.0, w) for w in LOCAL_WEIGHTS[1:]] + [(0.0, 1.0)]:
        acc = _top1(_combine(pg, pl, (wg, wl)), same, query)
        if acc >= need - 1e-9 and acc > best_acc + 1e-9:
            best, best_acc = (wg, wl), acc
    return best


LocalScores = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (query rows, candidate rows) -> local scores


def fit_fusion(pairs: dict[str, np.ndarray], labels: Sequence[Any], kind: str = "isotonic",
               groups: Optional[Sequence[Any]] = None) -> FusionCalibration:
    """Fit the three calibrations on labelled shortlist pairs (from `ranker.labelled_pairs`) and the open-set
    threshold on the fused probability (Youden's J over best genuine vs best impostor candidates)."""
    same = pairs["same"]
    g = ScoreCalibrator.fit(pairs["global"], same, kind)
    loc = ScoreCalibrator.fit(pairs["local"], same, kind)
    # the weights and the fused map are learnt on out-of-fold probabilities: an in-sample isotonic fit
    # finds structure even in a blind matcher's noise
    pg = _out_of_fold(pairs["global"], same, pairs["query"], kind)
    pl = _out_of_fold(pairs["local"], same, pairs["query"], kind)
    weights = _fusion_weights(pg, pl, same, np.asarray(pairs["query"]))
    fused = ScoreCalibrator.fit(_combine(pg, pl, weights), same, kind)
    p = fused(_combine(g(pairs["global"]), loc(pairs["local"]), weights))
    n = len(labels)
    mat = np.full((n, n), -1.0)
    mat[pairs["query"], pairs["candidate"]] = p
    try:
        thr = calibrate_threshold(mat, labels, groups)
    except DataError:
        thr = 0.5
    labels = np.asarray(labels)
    per_query = _per_query_best(p, pairs["query"], pairs["candidate"], labels)
    report = {"pairs": int(len(same)), "same_pairs": int(same.sum()), "weights": list(weights), "kind": kind,
              "best_two_tied": _tied_share(per_query),
              "ece_in_sample": {"global": expected_calibration_error(g(pairs["global"]), same),
                                "local": expected_calibration_error(loc(pairs["local"]), same),
                                "fused": expected_calibration_error(p, same)}}
    return FusionCalibration(g, loc, fused, weights, float(thr), report)


def held_out_probability(pairs: dict[str, np.ndarray], labels: Sequence[Any], kind: str = "isotonic",
                         folds: int = 5, seed: int = 0) -> np.ndarray:
    """P(same individual) of every labelled pair from a fusion fitted without the query's individual (folds by
    individual): what a query from an animal the calibration never saw gets. In-sample where a fold cannot fit."""
    labels = np.asarray(labels)
    fold = individual_folds(labels[pairs["query"]], folds, seed)
    full = fit_fusion(pairs, labels, kind)
    out = full.probabilities(pairs["global"], pairs["local"])["fused"].astype(float)
    for f in np.unique(fold):
        train = fold != f
        part = {k: v[train] for k, v in pairs.items()}
        if not part["same"].any() or part["same"].all():
            continue
        try:
            cal = fit_fusion(part, labels, kind)
        except DataError:
            continue
        test = ~train
        out[test] = cal.probabilities(pairs["global"][test], pairs["local"][test])["fused"]
    return out


def _per_query_best(p: np.ndarray, query: np.ndarray, candidate: np.ndarray, labels: np.ndarray
                    ) -> dict[int, dict[Any, float]]:
    """For each query, the best probability of each candidate individual."""
    out: dict[int, dict[Any, float]] = {}
    for q, c, v in zip(np.asarray(query).tolist(), np.asarray(candidate).tolist(), np.asarray(p, float).tolist()):
        d = out.setdefault(q, {})
        lbl = labels[c]
        if v > d.get(lbl, -1.0):
            d[lbl] = v
    return out


def tied_share(p: np.ndarray, query: np.ndarray, candidate: np.ndarray, labels: Sequence[Any]) -> float:
    """Share of queries whose two best candidate individuals get the same probability (within 1e-3): a
    calibration that ties them cannot rank."""
    return _tied_share(_per_query_best(p, query, candidate, np.asarray(labels)))


def _tied_share(per_query: dict[int, dict[Any, float]]) -> float:
    tied, total = 0, 0
    for best in per_query.values():
        if len(best) >= 2:
            a, b = sorted(best.values(), reverse=True)[:2]
            tied += a - b < 1e-3
            total += 1
    return float(tied / total) if total else 0.0


class CalibrationSet:
    """Fusion calibrations per species, with the `ANY_SPECIES` entry as fallback."""

    def __init__(self, by_species: Optional[dict[str, FusionCalibration]] = None) -> None:
        self.by_species = dict(by_species or {})

    def for_species(self, species: Optional[str]) -> FusionCalibration:
        got = self.by_species.get(species or "") or self.by_species.get(ANY_SPECIES)
        if got is None:
            raise DataError(f"no calibration for species {species!r} and no fallback: recalibrate first")
        return got

    def __contains__(self, species: str) -> bool:
        return species in self.by_species

    def to_dict(self) -> dict[str, Any]:
        return {s: c.to_dict() for s, c in self.by_species.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CalibrationSet":
        return cls({s: FusionCalibration.from_dict(c) for s, c in d.items()})


__all__ = ["ANY_SPECIES", "shortlist", "FusionCalibration", "fit_fusion",
           "CalibrationSet", "held_out_probability", "tied_share"]
