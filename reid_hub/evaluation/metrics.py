"""Re-ID metrics: closed-set retrieval (top-k, mAP), open-set (AUROC, balanced accuracy, AnimalCLEF), clustering
(accuracy, ARI, NMI) and IDF1 of video identities."""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..data.boxes import box_iou
from ..errors import DataError
from ..scoring.calibration import calibrate_threshold, excluded_pairs

#: the label an open-set prediction gives a query it calls new
NEW_INDIVIDUAL = "new_individual"

@dataclass
class RetrievalResult:
    """Closed-set retrieval metrics of one method on one species."""

    queries: int
    gallery: int
    top1: float
    top5: float
    mAP: float
    cmc: list[float]


def retrieval_metrics(sim: np.ndarray, labels: Sequence[str], max_rank: int = 20,
                      groups: Optional[Sequence[Any]] = None) -> RetrievalResult:
    """Leave-one-out retrieval metrics from a square similarity matrix (higher = more similar).

    With `groups`, a query is ranked only against images of other groups (cross-camera retrieval) and
    counts only if its identity appears in another group."""
    labels = np.asarray(labels)
    n = len(labels)
    if sim.shape != (n, n):
        raise DataError(f"similarity matrix {sim.shape} does not fit {n} labels")
    s = sim.astype(np.float64).copy()
    allowed = ~excluded_pairs(n, groups)
    same = labels[:, None] == labels[None, :]
    queries = np.flatnonzero((same & allowed).any(axis=1))
    if not len(queries):
        raise DataError("no identity has two images (in different groups): nothing to query")
    cmc = np.zeros(max_rank)
    aps, sizes = [], []
    for i in queries:
        cand = np.flatnonzero(allowed[i])
        sizes.append(len(cand))
        order = cand[np.argsort(-s[i, cand], kind="stable")]
        hits = labels[order] == labels[i]
        first = int(np.argmax(hits))
        if first < max_rank:
            cmc[first:] += 1
        ranks = np.flatnonzero(hits) + 1
        aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
    cmc /= len(queries)
    return RetrievalResult(len(queries), int(round(np.mean(sizes))), float(cmc[0]), float(cmc[min(4, max_rank - 1)]),
                           float(np.mean(aps)), [float(v) for v in cmc])


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve: probability that a positive scores above a negative (ties count half)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    ranks = pd.Series(allv).rank(method="average").to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def animalclef_scores(y_true: Sequence[str], y_pred: Sequence[str], new_identities: Sequence[str]) -> dict[str, float]:
    """AnimalCLEF 2025's open-set score: BAKS (balanced accuracy on known samples), BAUS (on unknown samples,
    the right answer being `NEW_INDIVIDUAL`) and their geometric mean, from `wildlife_datasets.metrics`."""
    from wildlife_datasets.metrics import BAKS, BAUS

    baks = float(BAKS(list(y_true), list(y_pred), list(new_identities)))
    baus = float(BAUS(list(y_true), list(y_pred), list(new_identities), NEW_INDIVIDUAL))
    both = [v for v in (baks, baus) if not np.isnan(v)]
    return {"baks": baks, "baus": baus,
            "animalclef_score": float(np.sqrt(baks * baus)) if len(both) == 2 else float("nan")}


def open_set_metrics(sim: np.ndarray, labels: Sequence[str], threshold: Optional[float], new_fraction: float = 0.5,
                     seed: int = 0, groups: Optional[Sequence[Any]] = None) -> dict[str, float]:
    """Open-set scores with a seeded share of identities removed from the gallery.

    `threshold` None calibrates it on the gallery's own images (the identities left in it), as a user
    with no labelled training identities of the species would."""
    labels = np.asarray(labels)
    ids = sorted(set(labels))
    rng = random.Random(seed)
    new_ids = set(rng.sample(ids, max(1, int(round(new_fraction * len(ids))))))
    is_new = np.array([lbl in new_ids for lbl in labels])
    excluded = excluded_pairs(len(labels), groups)
    if threshold is None:
        keep = np.flatnonzero(~is_new)
        threshold = calibrate_threshold(sim[np.ix_(keep, keep)], labels[keep],
                                        None if groups is None else np.asarray(groups)[keep])
    known_q, new_q, correct_known, correct_new = [], [], 0, 0
    y_true, y_pred = [], []
    for i in range(len(labels)):
        gallery = ~is_new & ~excluded[i]
        if not gallery.any():
            continue
        g_idx = np.flatnonzero(gallery)
        best = g_idx[int(np.argmax(sim[i, g_idx]))]
        score = float(sim[i, best])
        if is_new[i] or (labels[g_idx] == labels[i]).any():
            y_true.append(str(labels[i]))
            y_pred.append(str(labels[best]) if score >= threshold else NEW_INDIVIDUAL)
        if is_new[i]:
            new_q.append(score)
            correct_new += score < threshold
        elif (labels[g_idx] == labels[i]).any():
            known_q.append(score)
            correct_known += score >= threshold and labels[best] == labels[i]
    acc_k = correct_known / max(1, len(known_q))
    acc_n = correct_new / max(1, len(new_q))
    return {**animalclef_scores(y_true, y_pred, sorted(str(i) for i in new_ids)),
            "auroc": auroc(np.array(known_q), np.array(new_q)), "balanced_accuracy": (acc_k + acc_n) / 2,
            "known_accuracy": acc_k, "new_accuracy": acc_n, "threshold": threshold,
            "known_queries": len(known_q), "new_queries": len(new_q), "new_identities": len(new_ids)}


def cluster_accuracy(truth: Sequence[Any], pred: Sequence[Any]) -> float:
    """Share of items whose cluster maps to their identity under the best one-to-one matching of
    clusters to identities (the identification accuracy of the video-clustering papers)."""
    from scipy.optimize import linear_sum_assignment

    truth, pred = np.asarray(truth), np.asarray(pred)
    if len(truth) != len(pred) or len(truth) == 0:
        raise DataError("truth and prediction must be non-empty and of equal length")
    ti = np.unique(truth, return_inverse=True)[1]
    pi = np.unique(pred, return_inverse=True)[1]
    counts = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.int64)
    np.add.at(counts, (ti, pi), 1)
    r, c = linear_sum_assignment(-counts)
    return float(counts[r, c].sum() / len(truth))


def clustering_metrics(truth: Sequence[Any], pred: Sequence[Any]) -> dict[str, float]:
    """Identification accuracy after optimal matching, adjusted Rand index, adjusted and normalized mutual
    information."""
    from sklearn.metrics import adjusted_mutual_info_score, adjusted_rand_score, normalized_mutual_info_score

    return {"accuracy": cluster_accuracy(truth, pred), "ari": float(adjusted_rand_score(truth, pred)),
            "ami": float(adjusted_mutual_info_score(truth, pred)),
            "nmi": float(normalized_mutual_info_score(truth, pred))}


def idf1(gt: pd.DataFrame, pred: pd.DataFrame, gt_id: str = "identity", pred_id: str = "label",
         iou_threshold: float = 0.5) -> float:
    """IDF1 of predicted identities against ground-truth tracks (both tables: frame, x, y, w, h, id).

    Boxes of one frame are paired when their IoU reaches the threshold; IDTP is the largest number of
    paired detections that a one-to-one mapping of predicted to true identities explains;
    IDF1 = 2 IDTP / (|gt| + |pred|).
    """
    from scipy.optimize import linear_sum_assignment


    if len(gt) == 0 or len(pred) == 0:
        return 0.0
    g_ids, g_inv = np.unique(gt[gt_id].astype(str), return_inverse=True)
    p_ids, p_inv = np.unique(pred[pred_id].astype(str), return_inverse=True)
    counts = np.zeros((len(g_ids), len(p_ids)), dtype=np.int64)
    gb, pb = gt[["x", "y", "w", "h"]].to_numpy(), pred[["x", "y", "w", "h"]].to_numpy()
    p_rows = pd.Series(np.arange(len(pred))).groupby(pred["frame"].to_numpy()).indices
    for f, gi in pd.Series(np.arange(len(gt))).groupby(gt["frame"].to_numpy()).indices.items():
        pi = p_rows.get(f)
        if pi is None:
            continue
        iou = box_iou(gb[gi], pb[pi])
        a, b = np.nonzero(iou >= iou_threshold)
        np.add.at(counts, (g_inv[gi[a]], p_inv[pi[b]]), 1)
    r, c = linear_sum_assignment(-counts)
    idtp = counts[r, c].sum()
    return float(2 * idtp / (len(gt) + len(pred)))


__all__ = ["NEW_INDIVIDUAL", "RetrievalResult", "retrieval_metrics", "auroc", "animalclef_scores", "open_set_metrics",
           "cluster_accuracy", "clustering_metrics", "idf1"]
