"""Coarse-to-fine scoring: a global shortlist, local-feature scores for it, and both calibrated to
P(same individual) (as WildFusion does) and fused: a weighted sum of their log-odds, the weights learnt
per species on labelled pairs (WildFusion's plain mean lets a matcher that is blind on a species drag its
ranking down), recalibrated so the fused number is itself a probability.

Calibration is fitted on the pairs a search actually re-scores: each labelled image against its
top-B global candidates among the other labelled images. Per species, with a global fallback.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .calibration import ScoreCalibrator, calibrate_threshold, excluded_pairs, expected_calibration_error
from .errors import DataError

log = logging.getLogger(__name__)

#: the key of the calibration used for species without their own
ANY_SPECIES = "*"
DEFAULT_SHORTLIST = 20


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
    p = np.clip(np.asarray(p, float), 1e-3, 1 - 1e-3)
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


def _fusion_weights(pg: np.ndarray, pl: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """How much each calibrated score is worth, learnt on the pairs (non-negative logistic weights):
    a local matcher that does not separate a species' individuals gets a weight near zero."""
    from sklearn.linear_model import LogisticRegression

    x = np.stack([_logit(pg), _logit(pl)], 1)
    lr = LogisticRegression(C=1.0).fit(x, same)
    w = np.maximum(lr.coef_[0], 0.0)
    return (float(w[0]), float(w[1])) if w.sum() > 0 else (0.5, 0.5)


LocalScores = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (query rows, candidate rows) -> local scores


def labelled_pairs(global_sim: np.ndarray, labels: Sequence[Any], local_scores: LocalScores, depth: int,
                   groups: Optional[Sequence[Any]] = None) -> dict[str, np.ndarray]:
    """Every labelled image against its top-`depth` global candidates: query, candidate, both scores, same."""
    labels = np.asarray(labels)
    cand = shortlist(global_sim, depth, groups)
    qi = np.repeat(np.arange(len(labels)), cand.shape[1])
    ci = cand.ravel()
    keep = ci >= 0
    qi, ci = qi[keep], ci[keep]
    return {"query": qi, "candidate": ci, "global": global_sim[qi, ci].astype(float),
            "local": np.asarray(local_scores(qi, ci), float), "same": labels[qi] == labels[ci]}


def fit_fusion(pairs: dict[str, np.ndarray], labels: Sequence[Any], kind: str = "isotonic",
               groups: Optional[Sequence[Any]] = None) -> FusionCalibration:
    """Fit the three calibrations on labelled shortlist pairs (from `labelled_pairs`) and the open-set
    threshold on the fused probability (Youden's J over best genuine vs best impostor candidates)."""
    same = pairs["same"]
    g = ScoreCalibrator.fit(pairs["global"], same, kind)
    loc = ScoreCalibrator.fit(pairs["local"], same, kind)
    # the weights and the fused map are learnt on out-of-fold probabilities: an in-sample isotonic fit
    # finds structure even in a blind matcher's noise
    pg = _out_of_fold(pairs["global"], same, pairs["query"], kind)
    pl = _out_of_fold(pairs["local"], same, pairs["query"], kind)
    weights = _fusion_weights(pg, pl, same)
    fused = ScoreCalibrator.fit(_combine(pg, pl, weights), same, kind)
    p = fused(_combine(g(pairs["global"]), loc(pairs["local"]), weights))
    n = len(labels)
    mat = np.full((n, n), -1.0)
    mat[pairs["query"], pairs["candidate"]] = p
    try:
        thr = calibrate_threshold(mat, labels, groups)
    except DataError:
        thr = 0.5
    report = {"pairs": int(len(same)), "same_pairs": int(same.sum()), "weights": list(weights),
              "ece_in_sample": {"global": expected_calibration_error(g(pairs["global"]), same),
                                "local": expected_calibration_error(loc(pairs["local"]), same),
                                "fused": expected_calibration_error(p, same)}}
    return FusionCalibration(g, loc, fused, weights, float(thr), report)


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


__all__ = ["ANY_SPECIES", "DEFAULT_SHORTLIST", "shortlist", "FusionCalibration", "labelled_pairs", "fit_fusion",
           "CalibrationSet"]
