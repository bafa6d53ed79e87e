"""Calibration: the open-set threshold between 'a known individual' and 'a new one', and monotone maps
from raw scores to P(same individual) fitted on labelled pairs."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from ..errors import DataError


def excluded_pairs(n: int, groups: Optional[Sequence[Any]] = None) -> np.ndarray:
    """(n, n) mask of the pairs a query may never be matched with: itself, and with `groups` (e.g. the
    camera of each image) every image of its own group."""
    if groups is None:
        return np.eye(n, dtype=bool)
    g = np.asarray(groups)
    if len(g) != n:
        raise DataError(f"{len(g)} group values for {n} images")
    return g[:, None] == g[None, :]


def individual_folds(individual: Sequence[Any], folds: int = 5, seed: int = 0) -> np.ndarray:
    """A fold number per row such that all rows of one individual share a fold (seeded; at most `folds` folds):
    what cross-fitting by individual holds out together."""
    individual = np.asarray(individual)
    inds = np.unique(individual)
    order = np.random.default_rng(seed).permutation(inds)
    fold_of = dict(zip(order.tolist(), (np.arange(len(inds)) % max(1, min(folds, len(inds)))).tolist()))
    return np.array([fold_of[v] for v in individual.tolist()], dtype=np.int64)


def calibrate_threshold(sim: np.ndarray, labels: Sequence[str], groups: Optional[Sequence[Any]] = None) -> float:
    """Threshold on the best-match score that separates 'has a match' from 'new', by Youden's J.

    Genuine scores: each image's best score to another image of its identity; impostor scores:
    its best score to images of other identities (what a new individual would see). With `groups`,
    only pairs across groups count."""
    labels = np.asarray(labels)
    s = sim.astype(np.float64).copy()
    s[excluded_pairs(len(labels), groups)] = -np.inf
    same = labels[:, None] == labels[None, :]
    gen, imp = [], []
    for i in range(len(labels)):
        if same[i].sum() > 1:
            gen.append(np.max(np.where(same[i], s[i], -np.inf)))
        imp.append(np.max(np.where(~same[i], s[i], -np.inf)))
    gen, imp = np.asarray(gen), np.asarray(imp)
    gen, imp = gen[np.isfinite(gen)], imp[np.isfinite(imp)]
    if len(gen) == 0 or len(imp) == 0:
        raise DataError("cannot calibrate a threshold without genuine and impostor pairs")
    cands = np.unique(np.concatenate([gen, imp]))
    j = np.array([(gen >= t).mean() - (imp >= t).mean() for t in cands])
    best = int(np.argmax(j))
    # the same J holds on the whole gap below the best candidate: take the gap's middle, not its edge
    return float((cands[best - 1] + cands[best]) / 2) if best > 0 else float(cands[best])




# -- probabilities ----------------------------------------------------------------------------
class ScoreCalibrator:
    """A monotone map from a raw score to P(same individual), fitted on labelled pairs.

    kind "isotonic" (piecewise-linear through the isotonic fit, as WildFusion does) or "logistic"
    (Platt scaling). Stored as plain data (`to_dict` / `from_dict`)."""

    def __init__(self, kind: str = "isotonic", x: Sequence[float] = (), y: Sequence[float] = (),
                 coef: tuple[float, float] = (0.0, 0.0), pairs: int = 0, positives: int = 0) -> None:
        if kind not in ("isotonic", "logistic"):
            raise DataError(f"calibration kind must be isotonic or logistic, got {kind!r}")
        self.kind, self.x, self.y = kind, np.asarray(x, float), np.asarray(y, float)
        self.coef, self.pairs, self.positives = (float(coef[0]), float(coef[1])), int(pairs), int(positives)

    @classmethod
    def fit(cls, scores: Sequence[float], same: Sequence[bool], kind: str = "isotonic") -> "ScoreCalibrator":
        s, t = np.asarray(scores, float), np.asarray(same, bool)
        if len(s) != len(t) or t.all() or not t.any():
            raise DataError("calibration needs labelled pairs of both kinds (same and different individuals)")
        if kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            scale = float(np.std(s)) or 1.0
            lr = LogisticRegression(C=100.0).fit(s[:, None] / scale, t)
            return cls("logistic", coef=(float(lr.coef_[0, 0]) / scale, float(lr.intercept_[0])), pairs=len(s),
                       positives=int(t.sum()))
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, t.astype(float))
        return cls("isotonic", iso.X_thresholds_, iso.y_thresholds_, pairs=len(s), positives=int(t.sum()))

    def __call__(self, scores: Any) -> np.ndarray:
        s = np.asarray(scores, float)
        if self.kind == "logistic":
            return 1.0 / (1.0 + np.exp(-(self.coef[0] * s + self.coef[1])))
        p = np.interp(s, self.x, self.y)
        # isotonic fits are flat over whole blocks of scores: a strictly increasing term of at most 1e-4 keeps
        # the raw order inside a block, so a ranking by probability never loses the score's resolution
        lo, hi = (float(self.x[0]), float(self.x[-1])) if len(self.x) else (0.0, 1.0)
        z = (s - (lo + hi) / 2) / max(hi - lo, 1e-12) * 8
        # kept strictly inside (0, 1) so the order survives even in a block fitted at exactly 0 or 1
        return 1e-4 + (1 - 2e-4) * p + 0.5e-4 * (2 / (1 + np.exp(-z)) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "x": self.x.tolist(), "y": self.y.tolist(), "coef": list(self.coef),
                "pairs": self.pairs, "positives": self.positives}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ScoreCalibrator":
        return cls(d["kind"], d.get("x", ()), d.get("y", ()), tuple(d.get("coef", (0.0, 0.0))), d.get("pairs", 0),
                   d.get("positives", 0))


def expected_calibration_error(prob: Sequence[float], same: Sequence[bool], bins: int = 10) -> float:
    """ECE: the gap between predicted probability and observed frequency, averaged over equal-width bins
    weighted by their share of pairs."""
    p, t = np.asarray(prob, float), np.asarray(same, float)
    if len(p) == 0:
        return float("nan")
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    err = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            err += m.mean() * abs(p[m].mean() - t[m].mean())
    return float(err)


__all__ = ["calibrate_threshold", "excluded_pairs", "ScoreCalibrator", "expected_calibration_error"]
