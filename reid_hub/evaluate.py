"""Evaluation of re-ID embeddings on unseen identities, with baselines in the same split.

Closed-set retrieval: every image of an identity with at least two images is a query against a
gallery of all other images of its species (leave-one-out): top-1, top-5 (CMC) and mAP.
Open-set: a seeded half of the unseen identities is removed from the gallery; the best gallery
score must tell known from new queries (AUROC), and a threshold calibrated on the training
identities gives balanced accuracy over known (right ID) and new (called new) queries.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .boxes import box_iou
from .calibration import calibrate_threshold, excluded_pairs
from .discovery.session import Discovery, DiscoveryConfig
from .errors import DataError
from .model import ReIDModel, create_model
from .matching import create_matcher
from .scorers import FusedScorer, Scorer, TableFeatures, embed_table, embedding_scorer, local_scorer

log = logging.getLogger(__name__)

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


#: the prediction that says "an individual not in the gallery" in open-set scores
NEW_INDIVIDUAL = "new_individual"


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


def sift_similarity(df: pd.DataFrame) -> np.ndarray:
    """Pairwise SIFT scores: ratio-test matches that survive a RANSAC homography (inlier count)."""
    return local_scorer("sift")(df)


def _groups(part: pd.DataFrame, cross_column: Optional[str]) -> Optional[np.ndarray]:
    if not cross_column or cross_column not in part or part[cross_column].isna().all():
        return None
    return part[cross_column].astype(str).to_numpy()


def evaluate_methods(df: pd.DataFrame, methods: dict[str, Scorer], calib_df: Optional[pd.DataFrame] = None,
                     calib_methods: Optional[dict[str, Scorer]] = None, seed: int = 0,
                     cross_column: Optional[str] = None) -> dict[str, Any]:
    """Run every method on every species of `df` (the unseen identities) and collect metrics.

    `calib_df` (training identities) calibrates each method's open-set threshold; a species without
    training identities (or a method not in `calib_methods`) is calibrated on the gallery's own images.
    `cross_column` (e.g. camera): a query is never matched against images sharing its value; species
    whose images lack the column are evaluated leave-one-out as usual."""
    results: dict[str, Any] = {"species": {}, "methods": list(methods), "cross_column": cross_column}
    for species, part in df.groupby("species", sort=True):
        part = part.reset_index(drop=True)
        groups = _groups(part, cross_column)
        entry: dict[str, Any] = {"images": len(part), "identities": int(part["label"].nunique()),
                                 "cross_column": cross_column if groups is not None else None}
        for name, scorer in methods.items():
            t0 = time.time()
            sim = scorer(part)
            r = retrieval_metrics(sim, part["label"], groups=groups)
            m: dict[str, Any] = {"top1": r.top1, "top5": r.top5, "mAP": r.mAP, "queries": r.queries, "cmc": r.cmc}
            thr: Optional[float] = None
            if calib_df is not None and calib_methods and name in calib_methods:
                cpart = calib_df[calib_df["species"] == species].reset_index(drop=True)
                if cpart["label"].nunique() >= 2:
                    thr = calibrate_threshold(calib_methods[name](cpart), cpart["label"], _groups(cpart, cross_column))
            if thr is not None or part["label"].nunique() >= 4:  # self-calibration needs a few known identities
                m["open_set"] = open_set_metrics(sim, part["label"], thr, seed=seed, groups=groups)
                m["open_set"]["calibrated_on"] = "training identities" if thr is not None else "gallery"
            if getattr(scorer, "last_report", None):
                m["calibration"] = scorer.last_report
            m["seconds"] = round(time.time() - t0, 2)
            entry[name] = m
            log.info("%s %s top1=%.3f top5=%.3f mAP=%.3f", species, name, r.top1, r.top5, r.mAP)
        results["species"][species] = entry
    results["average"] = {
        name: {k: float(np.mean([results["species"][s][name][k] for s in results["species"]]))
               for k in ("top1", "top5", "mAP")}
        for name in methods
    }
    return results


def machine_info() -> dict[str, Any]:
    """Machine, versions and date, for result files."""
    import faiss
    import timm
    import torch

    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version(),
            "platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "timm": timm.__version__, "faiss": faiss.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def plot_results(results: dict[str, Any], path: str | Path) -> Path:
    """PNG with CMC curves per species and top-1 bars per species and method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    species = list(results["species"])
    methods = results["methods"]
    fig, axes = plt.subplots(1, len(species) + 1, figsize=(4 * (len(species) + 1), 3.6))
    axes = np.atleast_1d(axes)
    for ax, s in zip(axes, species):
        for m in methods:
            cmc = results["species"][s][m]["cmc"]
            ax.plot(range(1, len(cmc) + 1), cmc, marker=".", label=m)
        ax.set_title(f"{s}: CMC (unseen IDs)")
        ax.set_xlabel("rank")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("identification rate")
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    width = 0.8 / max(1, len(methods))
    for k, m in enumerate(methods):
        ax.bar(np.arange(len(species)) + k * width, [results["species"][s][m]["top1"] for s in species],
               width, label=m)
    ax.set_xticks(np.arange(len(species)) + 0.4 - width / 2)
    ax.set_xticklabels(species, rotation=20)
    ax.set_title("top-1 per species")
    ax.set_ylim(0, 1)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def imagenet_baseline(name: str = "lite0") -> ReIDModel:
    """The ImageNet backbone `name` without re-ID training, at the input size its weights were trained at
    (its pooled features, `describe(raw_features=True)`, are the baseline)."""
    from .model import get_model_config
    from .weights import NATIVE_SIZE

    size = NATIVE_SIZE.get(get_model_config(name).imagenet_weights or "")
    return create_model(name, pretrained=True, **({"preprocess": {"size": size}} if size else {}))


def method_names() -> list[str]:
    """Every method `evaluate_model` knows: the model, the ImageNet baseline, each local matcher alone
    (every pair scored), and the coarse-to-fine fusion with the default or a named matcher."""
    from .matching import MATCHERS

    return ["model", "imagenet", "fused", *MATCHERS, *(f"fused-{m}" for m in MATCHERS)]


def evaluate_model(model: ReIDModel, df: pd.DataFrame, baselines: Sequence[str] = ("imagenet", "sift"),
                   imagenet_backbone: str = "lite0", seed: int = 0, batch_size: int = 16,
                   cross_column: Optional[str] = None, shortlist: Optional[int] = None,
                   calibration: str = "isotonic") -> dict[str, Any]:
    """Evaluate `model` on the unseen split of `df` (needs a `split` column) beside other methods.

    `baselines` may name any of `method_names()` besides model: "imagenet", a matcher ("sift", ...),
    "fused" (global shortlist of `shortlist` re-scored with the default matcher, calibrated per species;
    default depth: the matcher's, 100 for SIFT and the whole gallery up to 500 images) or "fused-<matcher>"."""
    from .matching import DEFAULT_MATCHER, MATCHERS

    if "split" not in df:
        raise DataError("the table needs a split column (train/unseen); see reid_hub.data.split_by_identity")
    unknown = sorted(set(baselines) - set(method_names()))
    if unknown:
        raise DataError(f"unknown methods {unknown}; choose from {method_names()}")
    unseen = df[df["split"] == "unseen"]
    calib = df[df["split"] == "train"]
    if unseen.empty:
        raise DataError("no unseen identities to evaluate on")
    features: dict[str, TableFeatures] = {}

    def table_features(matcher: str) -> TableFeatures:
        if matcher not in features:  # one memo per matcher; embeddings are shared through the first one
            features[matcher] = TableFeatures(create_matcher(matcher), model, batch_size)
            if len(features) > 1:
                features[matcher]._emb = next(iter(features.values()))._emb
        return features[matcher]

    def model_scorer(part: pd.DataFrame) -> np.ndarray:
        e = table_features(DEFAULT_MATCHER).embeddings(part)
        return e @ e.T

    methods: dict[str, Scorer] = {"model": model_scorer}
    for name in baselines:
        if name == "model":
            continue
        if name == "imagenet":
            base = imagenet_baseline(imagenet_backbone)
            methods[f"imagenet-{imagenet_backbone}"] = embedding_scorer(base, raw_features=True, batch_size=batch_size)
        elif name in MATCHERS:
            methods[name] = local_scorer(name)
        else:
            matcher = DEFAULT_MATCHER if name == "fused" else name[len("fused-"):]
            # calibrated on the evaluated identities themselves (cross-fitted halves): the model was trained on
            # the training identities, so its scores there are optimistic and would miscalibrate unseen ones
            methods[name] = FusedScorer(model, calib_df=None, depth=shortlist, kind=calibration,
                                        cross_column=cross_column, seed=seed, features=table_features(matcher))
    # embedding methods calibrate their open-set threshold on the training identities; local and fused
    # scores on the gallery's own images (fused probabilities are calibrated, their threshold is not shared)
    calib_methods = {k: v for k, v in methods.items() if k == "model" or k.startswith("imagenet")}
    results = evaluate_methods(unseen, methods, calib_df=calib, calib_methods=calib_methods, seed=seed,
                               cross_column=cross_column)
    for species, part in unseen.groupby("species"):
        part = part.reset_index(drop=True)
        if len(part) >= 2:  # discovery: the unseen identities grouped without labels (reid-hub discover's default)
            grouped = Discovery(part, table_features(DEFAULT_MATCHER).embeddings(part), DiscoveryConfig(adapter=False),
                                keys=part["image_id"].tolist())
            results["species"][species]["model"]["discovery"] = {
                **clustering_metrics(part["label"], grouped.labels), "individuals": int(grouped.labels.max() + 1)}
    results["model"] = {"name": model.config.name, "fingerprint": model.fingerprint()}
    results["split"] = {s: {"unseen_identities": sorted(p["identity"].unique().tolist()),
                            "train_identities": int(calib[calib["species"] == s]["label"].nunique())}
                        for s, p in unseen.groupby("species")}
    results["machine"] = machine_info()
    return results


def write_results(results: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    """Write results JSON (atomically) and the PNG beside it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(results, indent=2))
    os.replace(tmp, out)
    return out, plot_results(results, out.with_suffix(".png"))


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


__all__ = ["NEW_INDIVIDUAL", "animalclef_scores", "imagenet_baseline", "excluded_pairs", "cluster_accuracy", "clustering_metrics", "idf1", "retrieval_metrics", "auroc", "calibrate_threshold", "open_set_metrics", "embed_table",
           "sift_similarity", "method_names", "evaluate_methods", "evaluate_model", "embedding_scorer", "plot_results",
           "write_results", "machine_info", "RetrievalResult"]
