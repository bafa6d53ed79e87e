"""Identities of every detection of one video: head, k-means with k = number of animals, and a
per-frame one-to-one assignment to the cluster centres (two detections of one frame are never the
same animal). Also: estimating k, tracklet smoothing, and the outputs (labels, MOT, prototypes)."""
from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from ..data.atomic import atomic_path
from ..errors import ConfigError, DataError
from .color import with_color
from .detections import frame_groups, iou_links, iou_tracklets
from .head import HeadConfig, train_head
from .kmeans import constrained_assign, kmeans

log = logging.getLogger(__name__)


@dataclass
class ClusterConfig:
    """One clustering run. k=None estimates the number of animals (between the per-frame detection
    count and k_max). `color_weight` sets the weight of the crops' colour histograms beside the model's
    descriptors (video.color; 0 turns them off). `tracklets` smooths labels along unambiguous IoU tracklets
    (None: on for a video's own frames, cluster_video; off for crop-videos and bare descriptors, whose
    consecutive rows need not be consecutive frames of one camera)."""

    k: Optional[int] = None
    k_max: Optional[int] = None
    use_head: bool = True
    constrained: bool = True
    tracklets: Optional[bool] = None
    color_weight: float = 0.5
    n_init: int = 10
    refine_iters: int = 5
    seed: int = 0
    head: HeadConfig = field(default_factory=HeadConfig)

    def __post_init__(self) -> None:
        if isinstance(self.head, dict):
            self.head = HeadConfig(**self.head)
        if self.k is not None and self.k < 1:
            raise ConfigError("k (the number of animals) must be at least 1")
        if self.k_max is not None and self.k_max < 1:
            raise ConfigError("k_max must be at least 1")
        if not 0 <= self.color_weight <= 10:
            raise ConfigError("color_weight lies in [0, 10] (0: the model's descriptors alone)")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class KEstimate:
    """An estimated number of animals: the chosen k, the runner-up, how sure (0..1), the method and the
    score of every candidate tried (co-occurrence p-value, or silhouette for the fallback)."""

    k: int
    runner_up: Optional[int]
    confidence: float
    method: str
    scores: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        return {"k": self.k, "runner_up": self.runner_up, "confidence": round(self.confidence, 4),
                "method": self.method, "scores": {int(a): round(float(b), 6) for a, b in self.scores.items()}}


def cooccurrence_score(labels: np.ndarray, groups: Sequence[np.ndarray], k: int) -> float:
    """How well k clusters look like k different animals: the smallest p-value, over pairs of clusters,
    of sharing so few frames by chance if each is present independently at its own rate (binomial).
    Two clusters that split one animal never share a frame; two animals share frames."""
    from scipy.stats import binom

    occ = np.zeros((len(groups), k), dtype=np.float64)
    for fi, g in enumerate(groups):
        occ[fi, labels[g]] = 1.0
    rate = occ.mean(axis=0)
    shared = occ.T @ occ
    a, b = np.triu_indices(k, 1)
    if not len(a):
        return 1.0
    return float(binom.cdf(shared[a, b], len(groups), rate[a] * rate[b]).min())


def _silhouette_k(z: np.ndarray, groups: Sequence[np.ndarray], low: int, high: int, seed: int,
                  sample: int) -> KEstimate:
    from sklearn.metrics import silhouette_score

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(z), min(sample, len(z)), replace=False))
    scores = {}
    for k in range(low, high + 1):
        labels, _ = constrained_assign(z, groups, kmeans(z, k, n_init=3, seed=seed), iters=2)
        if len(np.unique(labels[idx])) >= 2:
            scores[k] = float(silhouette_score(z[idx], labels[idx], metric="cosine"))
    if not scores:
        return KEstimate(low, None, 0.0, "lower bound", scores)
    ranked = sorted(scores, key=scores.get, reverse=True)
    runner = ranked[1] if len(ranked) > 1 else None
    gap = scores[ranked[0]] - (scores[runner] if runner is not None else -1.0)
    return KEstimate(ranked[0], runner, float(min(1.0, max(0.0, gap) / 0.05)), "silhouette", scores)


def estimate_k(z: np.ndarray, groups: Sequence[np.ndarray], k_max: Optional[int] = None, seed: int = 0,
               evidence: float = 0.3, sample: int = 4000) -> KEstimate:
    """The number of animals in a video from its (unit) descriptors and its frames' detections.

    The lower bound is the 95th percentile of detections per frame (animals seen together); k_max
    defaults to twice that plus 4. From the lower bound, one more animal is accepted while the
    clustering with it still looks like distinct animals (`cooccurrence_score` >= `evidence`): a split
    animal shows as two clusters that avoid each other. Confidence is 1 minus the score of the first
    rejected k (the runner-up). Videos with mostly one detection per frame carry no co-occurrence
    evidence: there the cosine silhouette decides.
    """
    counts = np.array([len(g) for g in groups])
    low = max(2, int(np.ceil(np.percentile(counts, 95))))
    high = min(len(z) - 1, k_max if k_max is not None else 2 * low + 4)
    if high < low:
        return KEstimate(max(1, min(low, len(z))), None, 0.0, "lower bound", {})
    if np.median(counts) < 2:
        return _silhouette_k(z, groups, low, high, seed, sample)
    scores: dict[int, float] = {}
    k = low
    for cand in range(low, high + 1):
        labels, _ = constrained_assign(z, groups, kmeans(z, cand, n_init=3, seed=seed), iters=5)
        scores[cand] = cooccurrence_score(labels, groups, cand)
        if cand > low and scores[cand] < evidence:
            return KEstimate(k, cand, 1.0 - scores[cand], "co-occurrence", scores)
        k = cand
    return KEstimate(k, None, 0.0, "co-occurrence (reached k_max)", scores)


@dataclass
class VideoClustering:
    """The result: `detections` gains label, similarity (to its centre) and conflict columns."""

    detections: pd.DataFrame
    k: int
    centres: np.ndarray
    projected: np.ndarray
    embeddings: Optional[np.ndarray] = None
    k_estimate: Optional[KEstimate] = None
    head_info: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return self.detections["label"].to_numpy()

    def clusters(self) -> dict[str, np.ndarray]:
        """Gallery-space embeddings of each cluster (label -> (n, D)), for gallery.assign_clip."""
        if self.embeddings is None:
            raise ConfigError("this clustering ran on backbone features: no gallery embeddings to match")
        return {str(c): np.asarray(self.embeddings[self.labels == c], dtype=np.float32) for c in range(self.k)
                if (self.labels == c).any()}

    def frames_and_boxes(self) -> tuple[dict[str, list[int]], dict[str, list[tuple]]]:
        """Frames and boxes of each cluster, in the order of clusters()."""
        frames: dict[str, list[int]] = {}
        boxes: dict[str, list[tuple]] = {}
        for r in self.detections.itertuples():
            frames.setdefault(str(r.label), []).append(int(r.frame))
            boxes.setdefault(str(r.label), []).append((r.x, r.y, r.w, r.h))
        return frames, boxes

    def prototypes(self) -> dict[str, np.ndarray]:
        """Unit-norm mean gallery embedding of each cluster."""
        out = {}
        for key, e in self.clusters().items():
            m = e.mean(axis=0)
            out[key] = m / max(np.linalg.norm(m), 1e-12)
        return out

    def cluster_sizes(self) -> dict[str, int]:
        """Detections per cluster label."""
        counts = np.bincount(self.labels, minlength=self.k)
        return {str(c): int(counts[c]) for c in range(self.k)}

    def representatives(self, n: int = 4) -> dict[int, np.ndarray]:
        """Row indices of the n detections closest to each cluster centre."""
        sim = self.detections["similarity"].to_numpy()
        out = {}
        for c in range(self.k):
            rows = np.flatnonzero(self.labels == c)
            out[c] = rows[np.argsort(-sim[rows])[:n]]
        return out

    def write(self, out_dir: str | Path, source: Any = None, padding: float = 0.1, crops_per_cluster: int = 4) -> Path:
        """Write labels.csv, tracks.txt (MOT: frame,id,x,y,w,h,conf,-1,-1,-1, 1-based), prototypes.npz,
        summary.json and, given the frame source, crops/<cluster>/ representative crops. Each file is
        written to a temporary name and renamed."""
        from ..data.imaging import crop_box

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)

        def atomic(name: str, write) -> None:
            with atomic_path(out / name) as tmp:
                write(tmp)

        table = self.detections
        if "input_row" in table:  # a crop table: one row per input crop, in input order, its own frame numbers
            table = table.sort_values("input_row", kind="stable")
            table = table.assign(frame=table["source_frame"]).drop(columns=["source_frame", "input_row"])
        atomic("labels.csv", lambda p: table.to_csv(p, index=False))
        mot = table
        lines = [f"{int(r.frame) + 1},{int(r.label) + 1},{r.x:.2f},{r.y:.2f},{r.w:.2f},{r.h:.2f},{r.score:.4f},-1,-1,-1"
                 for r in mot.itertuples()]
        atomic("tracks.txt", lambda p: p.write_text("\n".join(lines) + "\n"))
        if self.embeddings is not None:
            protos = self.prototypes()

            def save_npz(p: Path) -> None:
                with open(p, "wb") as fh:
                    np.savez(fh, **{f"cluster_{k}": v for k, v in protos.items()})
            atomic("prototypes.npz", save_npz)
        summary = {"k": self.k, "detections": len(self.detections),
                   "k_estimate": self.k_estimate.to_dict() if self.k_estimate else None,
                   "cluster_sizes": self.cluster_sizes(),
                   "conflicts": int(self.detections["conflict"].sum()), "timings_s": self.timings,
                   "head": {k: v for k, v in self.head_info.items() if k not in ("log", "prototypes")}}
        atomic("summary.json", lambda p: p.write_text(json.dumps(summary, indent=2, default=float)))
        if source is None and "path" in self.detections:  # crop files: copy the representatives
            for c, rows in self.representatives(crops_per_cluster).items():
                d = out / "crops" / f"cluster_{c}"
                d.mkdir(parents=True, exist_ok=True)
                for i in rows:
                    src = Path(self.detections.at[i, "path"])
                    shutil.copyfile(src, d / f"{i}_{src.name}")
        if source is not None:
            reps = self.representatives(crops_per_cluster)
            wanted = {int(self.detections.at[i, "frame"]): [] for rows in reps.values() for i in rows}
            for c, rows in reps.items():
                for i in rows:
                    wanted[int(self.detections.at[i, "frame"])].append((c, i))
            for f, img in source.iter_frames(sorted(wanted)):
                for c, i in wanted[f]:
                    d = out / "crops" / f"cluster_{c}"
                    d.mkdir(parents=True, exist_ok=True)
                    r = self.detections.loc[i]
                    crop_box(img, (r.x, r.y, r.w, r.h), pad=padding).save(d / f"frame{f:06d}_{i}.jpg", quality=90)
        return out


def cluster_described(desc: np.ndarray, colors: Callable[[], np.ndarray], detections: pd.DataFrame,
                      config: ClusterConfig, descriptor: str, timings: dict[str, Any],
                      progress: bool = False) -> VideoClustering:
    """Cluster detections from the model's descriptors `desc`, beside their colour descriptors (computed by
    `colors()` only when config.color_weight > 0); `timings` (read_detections_s, decode_s, embed_s, cached)
    are merged into the result's."""
    features, color_s = desc, 0.0
    if config.color_weight > 0:
        t0 = time.perf_counter()
        features = with_color(desc, colors(), config.color_weight)
        color_s = time.perf_counter() - t0
    result = cluster_descriptors(features, detections, config,
                                 embeddings=desc if descriptor == "embedding" else None, progress=progress)
    result.timings = {"read_detections_s": timings["read_detections_s"], "decode_s": timings["decode_s"],
                      "embed_s": timings["embed_s"], "color_s": color_s, **result.timings,
                      "descriptors_cached": timings["cached"]}
    return result


def cluster_descriptors(descriptors: np.ndarray, detections: pd.DataFrame, config: ClusterConfig = ClusterConfig(),
                        embeddings: Optional[np.ndarray] = None, identities: Optional[np.ndarray] = None,
                        progress: bool = False) -> VideoClustering:
    """Cluster one video's detections from their descriptors (row i of `descriptors` is row i of the
    sorted detections table). `embeddings` are the gallery-space vectors kept for matching; with
    `identities` the head is the supervised baseline."""
    if len(descriptors) != len(detections):
        raise DataError(f"{len(descriptors)} descriptors for {len(detections)} detections")
    if len(detections) == 0:
        raise DataError("no detections to cluster (check the detections file and the score threshold)")
    if not detections["frame"].is_monotonic_increasing:
        raise DataError("detections must be sorted by frame (use read_detections / clean_detections)")
    t = {}
    groups = frame_groups(detections)
    max_per_frame = max(len(g) for g in groups)
    if config.k is not None and config.k > len(detections):
        raise DataError(f"k={config.k} animals but the video has only {len(detections)} detections")
    if config.k is not None and config.k < max_per_frame:
        log.warning("k=%d but up to %d detections share a frame: the extra ones are flagged as conflicts",
                    config.k, max_per_frame)
    t0 = time.perf_counter()
    head_info: dict[str, Any] = {}
    links = None
    if config.head.temporal or config.tracklets:
        links = iou_links(detections, config.head.iou_threshold, config.head.temporal_gap)
    k_estimate = None
    k = config.k
    if k is None:  # estimated on the frozen descriptors, before the head (which needs k)
        base = np.asarray(descriptors, dtype=np.float32)
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
        k_estimate = estimate_k(base, groups, config.k_max, seed=config.seed)
        k = k_estimate.k
        log.info("estimated k=%d animals (runner-up %s, confidence %.2f, %s)", k, k_estimate.runner_up,
                 k_estimate.confidence, k_estimate.method)
    if config.use_head and len(groups) >= 2:
        head, head_info = train_head(descriptors, groups, config.head, k=k, scores=detections["score"].to_numpy(),
                                     links=links, identities=identities, progress=progress)
        z = head.project(descriptors)
    else:
        z = np.asarray(descriptors, dtype=np.float32)
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    t["head_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if head_info.get("prototypes") is not None:  # the head's learned identity prototypes are the centres
        centres = np.array(head_info["prototypes"], dtype=np.float32)
    else:
        centres = kmeans(z, k, n_init=config.n_init, seed=config.seed)
    tracklets = iou_tracklets(detections, config.head.iou_threshold, config.head.temporal_gap, links=links) \
        if config.tracklets else None
    if config.constrained:
        labels, conflict = constrained_assign(z, groups, centres, tracklets, iters=config.refine_iters)
    else:
        labels, conflict = (z @ centres.T).argmax(axis=1), np.zeros(len(z), dtype=bool)
    t["cluster_s"] = time.perf_counter() - t0
    out = detections.copy()
    out["label"] = labels
    out["similarity"] = (z * centres[labels]).sum(axis=1)
    out["conflict"] = conflict
    return VideoClustering(out, k, centres, z, embeddings, k_estimate, head_info, t)
