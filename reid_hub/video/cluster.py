"""Identities of every detection of one video: head, k-means with k = number of animals, and a
per-frame one-to-one assignment to the cluster centres (two detections of one frame are never the
same animal). Also: estimating k, tracklet smoothing, and the outputs (labels, MOT, prototypes)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError
from .assignment import constrained_assign, kmeans
from .detections import frame_groups, iou_links, iou_tracklets
from .head import HeadConfig, train_head

log = logging.getLogger(__name__)


@dataclass
class ClusterConfig:
    """One clustering run. k=None estimates the number of animals (between the per-frame detection
    count and k_max). `tracklets` smooths labels along unambiguous IoU tracklets."""

    k: Optional[int] = None
    k_max: Optional[int] = None
    use_head: bool = True
    constrained: bool = True
    tracklets: bool = False
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

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_k(z: np.ndarray, groups: Sequence[np.ndarray], k_max: Optional[int] = None, seed: int = 0,
               sample: int = 4000) -> tuple[int, dict[int, float]]:
    """Estimated number of animals and the score of each candidate k.

    Candidates run from the 95th percentile of detections per frame (a lower bound when animals are
    mostly visible) to k_max (default twice that, plus 4); each is scored by the cosine silhouette of
    its constrained clustering on a sample, and the best one wins.
    """
    from sklearn.metrics import silhouette_score

    counts = np.array([len(g) for g in groups])
    low = max(2, int(np.ceil(np.percentile(counts, 95))))
    high = min(len(z) - 1, k_max if k_max is not None else 2 * low + 4)
    if high < low:
        return max(1, min(low, len(z))), {}
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(z), min(sample, len(z)), replace=False))
    scores = {}
    for k in range(low, high + 1):
        labels, _ = constrained_assign(z, groups, kmeans(z, k, n_init=3, seed=seed), iters=2)
        if len(np.unique(labels[idx])) < 2:
            continue
        scores[k] = float(silhouette_score(z[idx], labels[idx], metric="cosine"))
    if not scores:
        return low, scores
    return max(scores, key=scores.get), scores


@dataclass
class VideoClustering:
    """The result: `detections` gains label, similarity (to its centre) and conflict columns."""

    detections: pd.DataFrame
    k: int
    centres: np.ndarray
    projected: np.ndarray
    embeddings: Optional[np.ndarray] = None
    k_scores: dict[int, float] = field(default_factory=dict)
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
        from ..imaging import crop_box

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)

        def atomic(name: str, write) -> None:
            tmp = out / f".{name}.tmp"
            write(tmp)
            os.replace(tmp, out / name)

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
        summary = {"k": self.k, "detections": len(self.detections), "k_scores": self.k_scores,
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
    k_scores: dict[int, float] = {}
    k = config.k
    if k is None:  # estimated on the frozen descriptors, before the head (which needs k)
        base = np.asarray(descriptors, dtype=np.float32)
        base = base / np.maximum(np.linalg.norm(base, axis=1, keepdims=True), 1e-12)
        k, k_scores = estimate_k(base, groups, config.k_max, seed=config.seed)
        log.info("estimated k=%d animals (silhouette by k: %s)", k, k_scores)
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
    return VideoClustering(out, k, centres, z, embeddings, k_scores, head_info, t)
