"""Open-set calibration: the score threshold between 'a known individual' and 'a new one'."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .errors import DataError


def excluded_pairs(n: int, groups: Optional[Sequence[Any]] = None) -> np.ndarray:
    """(n, n) mask of the pairs a query may never be matched with: itself, and with `groups` (e.g. the
    camera of each image) every image of its own group."""
    if groups is None:
        return np.eye(n, dtype=bool)
    g = np.asarray(groups)
    if len(g) != n:
        raise DataError(f"{len(g)} group values for {n} images")
    return g[:, None] == g[None, :]


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


__all__ = ["calibrate_threshold", "excluded_pairs"]
