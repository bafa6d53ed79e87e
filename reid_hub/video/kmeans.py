"""Spherical k-means and the per-frame one-to-one assignment of detections to identity centres."""
from __future__ import annotations

from typing import Optional, Sequence

import faiss
import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import DataError


def kmeans(z: np.ndarray, k: int, n_init: int = 10, seed: int = 0, niter: int = 50) -> np.ndarray:
    """Centres (k, d) of spherical k-means (FAISS) on unit vectors z (N, d)."""
    z = np.ascontiguousarray(z, dtype=np.float32)
    if k > len(z):
        raise DataError(f"k={k} animals but only {len(z)} detections: k cannot exceed the detections")
    if k == 1:
        c = z.mean(axis=0, keepdims=True)
        return c / max(np.linalg.norm(c), 1e-12)
    km = faiss.Kmeans(z.shape[1], k, niter=niter, nredo=n_init, spherical=True, seed=seed,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, len(z) // k + 1), verbose=False)
    km.train(z)
    return km.centroids.copy()


def constrained_assign(z: np.ndarray, groups: Sequence[np.ndarray], centres: np.ndarray,
                       tracklets: Optional[np.ndarray] = None, iters: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,) and a conflict flag (N,): within each frame, detections take distinct clusters by an
    optimal assignment on similarity to the centres (with `tracklets`, the similarity of each
    detection's whole tracklet); detections beyond k in one frame take their best cluster and are
    flagged. The centres are re-estimated from the labels `iters` times."""
    k = len(centres)
    labels = np.zeros(len(z), dtype=np.int64)
    conflict = np.zeros(len(z), dtype=bool)
    for it in range(max(1, iters)):
        sim = z @ centres.T
        if tracklets is not None:
            counts = np.bincount(tracklets)
            tsum = np.zeros((counts.size, k))
            np.add.at(tsum, tracklets, sim)
            sim = tsum[tracklets] / counts[tracklets, None]
        new = sim.argmax(axis=1)
        conflict[:] = False
        for g in groups:
            if len(g) < 2:
                continue
            r, c = linear_sum_assignment(-sim[g])
            new[g[r]] = c
            if len(g) > k:
                extra = np.setdiff1d(np.arange(len(g)), r)
                conflict[g[extra]] = True
        if np.array_equal(new, labels) and it > 0:
            break
        labels = new
        for c in range(k):  # re-estimate centres; an emptied cluster keeps its centre
            m = labels == c
            if m.any():
                v = z[m].mean(axis=0)
                centres[c] = v / max(np.linalg.norm(v), 1e-12)
    return labels, conflict


__all__ = ["kmeans", "constrained_assign"]
