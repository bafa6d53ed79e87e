"""One call from a video (or frame folder) and its detections to identities, and on to a gallery."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from ..errors import ConfigError
from .cluster import ClusterConfig, VideoClustering, cluster_described
from .descriptors import compute_descriptors
from .detections import clean_detections, read_detections
from .frames import FrameSource, open_frames

log = logging.getLogger(__name__)


def load_video_detections(video: str | Path, detections: str | Path | pd.DataFrame, fmt: str = "auto",
                          min_score: float = 0.5) -> tuple[FrameSource, pd.DataFrame]:
    """The frame source and its validated detections (clipped to the frame, within the frame count)."""
    source = open_frames(video)
    size = (source.width, source.height)
    if isinstance(detections, pd.DataFrame):
        det = clean_detections(detections, min_score=min_score, frame_size=size, n_frames=source.n_frames)
    else:
        det = read_detections(detections, fmt=fmt, min_score=min_score, frame_size=size, n_frames=source.n_frames)
    return source, det


def cluster_video(video: str | Path, detections: str | Path | pd.DataFrame, model: Any,
                  config: ClusterConfig = ClusterConfig(), fmt: str = "auto", min_score: float = 0.5,
                  padding: float = 0.1, descriptor: str = "embedding", cache_dir: Optional[str | Path] = None,
                  batch_size: int = 16, progress: bool = False) -> tuple[VideoClustering, FrameSource]:
    """Identify every detected animal of a video without labels; returns the clustering and the
    frame source (for writing crops). Descriptors are cached (see compute_descriptors)."""
    if not 0 <= padding <= 1:
        raise ConfigError("padding is a share of the box side in [0, 1]")
    if config.tracklets is None:  # a real video: boxes move smoothly from frame to frame
        config = replace(config, tracklets=True)
    t0 = time.perf_counter()
    source, det = load_video_detections(video, detections, fmt, min_score)
    timings: dict = {"read_detections_s": time.perf_counter() - t0}
    desc = compute_descriptors(source, det, model, kind=descriptor, padding=padding, cache_dir=cache_dir,
                               batch_size=batch_size, progress=progress, timings=timings)
    # colour: a second pass over the frames, cached like the descriptors
    result = cluster_described(desc, lambda: compute_descriptors(source, det, model, kind="color", padding=padding,
                                                                 cache_dir=cache_dir, batch_size=256),
                               det, config, descriptor, timings, progress)
    return result, source


def assign_video(gallery: Any, result: VideoClustering, video_name: str, enroll: bool = True,
                 species: str = "", threshold: Optional[float] = None, encounter: Optional[str] = None) -> list:
    """Match (and with `enroll`, add) every cluster of a clustered video to the gallery's persistent
    individuals; videos of one `encounter` (e.g. the synchronized cameras of one recording) show the same
    animals. See gallery.assign_clip."""
    from ..gallery import assign_clip

    frames, boxes = result.frames_and_boxes()
    return assign_clip(gallery, result.clusters(), video=video_name, frames=frames, boxes=boxes, species=species,
                       threshold=threshold, enroll=enroll, encounter=encounter)


def propose_video(gallery: Any, result: VideoClustering, source: FrameSource, video_name: str, species: str = "",
                  camera: Optional[str] = None, max_members: int = 12, padding: float = 0.1,
                  actor: str = "local") -> list[dict[str, Any]]:
    """Send every cluster of a clustered video to review instead of enrolling it: one proposal per cluster
    with up to `max_members` of its detections (spread over the clip; their crops give the evidence and,
    once confirmed, thumbnails and local features), its top candidates and P(same individual). Clusters
    the gallery auto-accepts are enrolled at once (see gallery.review.propose)."""
    import numpy as np

    from ..gallery import review
    from ..data.imaging import crop_box

    det = result.detections.reset_index(drop=True)
    clusters = result.clusters()
    picks: dict[str, np.ndarray] = {}
    for key in clusters:
        rows = np.flatnonzero(det["label"].to_numpy() == int(key))
        picks[key] = rows[np.linspace(0, len(rows) - 1, min(max_members, len(rows))).round().astype(int)]
    wanted = sorted({int(det.loc[i, "frame"]) for rows in picks.values() for i in rows})
    frames = dict(source.iter_frames(wanted))
    out = []
    for key, rows in picks.items():
        emb = np.asarray(result.embeddings[rows], np.float32)
        crops = [crop_box(frames[int(det.loc[i, "frame"])], (det.loc[i, "x"], det.loc[i, "y"], det.loc[i, "w"],
                                                              det.loc[i, "h"]), pad=padding) for i in rows]
        proto = emb.mean(axis=0)
        rep = int(np.argmax(emb @ proto))  # the member closest to the cluster's centre shows the cluster
        res = review.propose(gallery, emb, crops[rep], species=species, source=f"{video_name}#{key}", video=video_name,
                             camera=camera, cluster=key, frames=[int(det.loc[i, "frame"]) for i in rows],
                             boxes=[tuple(float(det.loc[i, c]) for c in "xywh") for i in rows], images=crops,
                             actor=actor)
        out.append({"cluster": key, **res})
    return out
