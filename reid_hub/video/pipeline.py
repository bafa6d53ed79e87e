"""One call from a video (or frame folder) and its detections to the identity of every detection (galleries are
the caller's: app.clips)."""
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
