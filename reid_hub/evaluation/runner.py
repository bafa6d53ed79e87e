"""Evaluation of re-ID embeddings on unseen identities, with baselines in the same split.

Closed-set retrieval: every image of an identity with at least two images is a query against a
gallery of all other images of its species (leave-one-out): top-1, top-5 (CMC) and mAP.
Open-set: a seeded half of the unseen identities is removed from the gallery; the best gallery
score must tell known from new queries (AUROC), and a threshold calibrated on the training
identities gives balanced accuracy over known (right ID) and new (called new) queries.
"""
from __future__ import annotations

import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..data.atomic import write_json_atomic
from ..discovery.local_evidence import verify_collection
from ..discovery.session import Discovery, DiscoveryConfig
from ..errors import DataError
from ..models.model import ReIDModel, create_model
from ..scoring.calibration import calibrate_threshold
from ..scoring.matchers import create_matcher
from .metrics import clustering_metrics, open_set_metrics, retrieval_metrics
from .scorers import FusedScorer, Scorer, TableFeatures, embedding_scorer, local_scorer

log = logging.getLogger(__name__)







#: the prediction that says "an individual not in the gallery" in open-set scores






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
    from ..models.configs import get_model_config
    from ..models.imagenet import NATIVE_SIZE

    size = NATIVE_SIZE.get(get_model_config(name).imagenet_weights or "")
    return create_model(name, pretrained=True, **({"preprocess": {"size": size}} if size else {}))


def method_names() -> list[str]:
    """Every method `evaluate_model` knows: the model, the ImageNet baseline, each local matcher alone
    (every pair scored), and the coarse-to-fine fusion with the default or a named matcher."""
    from ..scoring.matchers import MATCHERS

    return ["model", "imagenet", "fused", *MATCHERS, *(f"fused-{m}" for m in MATCHERS)]


def evaluate_model(model: ReIDModel, df: pd.DataFrame, baselines: Sequence[str] = ("imagenet", "sift"),
                   imagenet_backbone: str = "lite0", seed: int = 0, batch_size: int = 16,
                   cross_column: Optional[str] = None, shortlist: Optional[int] = None,
                   calibration: str = "isotonic") -> dict[str, Any]:
    """Evaluate `model` on the unseen split of `df` (needs a `split` column) beside other methods.

    `baselines` may name any of `method_names()` besides model: "imagenet", a matcher ("sift", ...),
    "fused" (global shortlist of `shortlist` re-scored with the default matcher, calibrated per species;
    default depth: the matcher's, 100 for SIFT and the whole gallery up to 500 images) or "fused-<matcher>"."""
    from ..scoring.matchers import DEFAULT_MATCHER, MATCHERS

    if "split" not in df:
        raise DataError("the table needs a split column (train/unseen); see reid_hub.data.tables.split_by_identity")
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
            emb, cfg = table_features(DEFAULT_MATCHER).embeddings(part), DiscoveryConfig(adapter=False)
            local = verify_collection(part, emb, {str(species): np.arange(len(part))}, cfg.verify, progress=False)
            grouped = Discovery(part, emb, cfg, keys=part["image_id"].tolist(), local=local)
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
    out = write_json_atomic(out, results, indent=2)
    return out, plot_results(results, out.with_suffix(".png"))








__all__ = ["imagenet_baseline", "sift_similarity", "method_names", "evaluate_methods", "evaluate_model",
           "plot_results", "write_results", "machine_info"]
