"""The one clip flow of the service, the UI and the CLI: a clip (a video with its detections, or a crop-video) ->
its animals (self-supervised clustering) -> persistent gallery individuals, or review proposals.

Limits are the caller's (`ClipLimits`, from the service's config, for uploads; none for the CLI's own files); the
steps are the same everywhere.
"""
from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
from PIL import Image

from ..data.imaging import crop_box
from ..errors import DataError, TooLargeError
from ..gallery import Gallery, assign_clip, review
from ..video import ClusterConfig, VideoClustering, cluster_crops, cluster_video, read_crop_archive
from ..video.frames import FrameSource


@dataclass(frozen=True)
class ClipLimits:
    """What a clip may weigh: the upload (video or crop archive) and what a crop archive may unpack to."""

    max_bytes: int = 200 * 1024 * 1024
    max_files: int = 50000

    @property
    def max_unpacked(self) -> int:
        return 4 * self.max_bytes


@dataclass
class ClipRequest:
    """One clip to identify: `video` + `detections`, or `crops` (a crop table, or a zip of one with its crops)."""

    name: str
    video: Optional[Path] = None
    detections: Optional[Path] = None
    crops: Optional[Path | pd.DataFrame] = None  # a table file, a zip of one with its crops, or a read table
    config: ClusterConfig = field(default_factory=ClusterConfig)
    detections_format: str = "auto"
    min_score: float = 0.5
    padding: float = 0.1
    cache_dir: Optional[Path] = None
    progress: bool = False


def open_crop_archive(archive: Path, dest: Path, limits: ClipLimits) -> pd.DataFrame:
    """The crop table of an uploaded zip, extracted into `dest` within `limits` (TooLargeError beyond them)."""
    if Path(archive).stat().st_size > limits.max_bytes:
        raise TooLargeError(f"archive larger than {limits.max_bytes} bytes")
    return read_crop_archive(archive, dest, max_files=limits.max_files, max_bytes=limits.max_unpacked)


def cluster_clip(model: Any, req: ClipRequest, workdir: Path,
                 limits: Optional[ClipLimits] = None) -> tuple[VideoClustering, Optional[FrameSource]]:
    """The animals of a clip: its clustering, and its frames (None for a crop-video). With `limits` (uploads), a
    video or crop archive above them is a TooLargeError; a crop archive is extracted into `workdir`."""
    if req.crops is not None:
        crops: Any = req.crops
        if not isinstance(crops, pd.DataFrame) and Path(crops).suffix.lower() == ".zip":
            crops = open_crop_archive(crops, Path(workdir) / "crops", limits or ClipLimits())
        return cluster_crops(crops, model, req.config, min_score=req.min_score,
                             cache_dir=req.cache_dir, progress=req.progress), None
    if limits is not None and req.video is not None and Path(req.video).is_file() \
            and Path(req.video).stat().st_size > limits.max_bytes:
        raise TooLargeError(f"video larger than {limits.max_bytes} bytes")
    return cluster_video(req.video, req.detections, model, req.config, fmt=req.detections_format,
                         min_score=req.min_score, padding=req.padding, cache_dir=req.cache_dir,
                         progress=req.progress)


def place_clip(gallery: Gallery, result: VideoClustering, source: Optional[FrameSource], name: str,
               review_first: bool = False, species: str = "", encounter: Optional[str] = None, enroll: bool = True,
               threshold: Optional[float] = None, actor: str = "local") -> dict[str, list]:
    """Give the clip's clusters persistent individuals (`assignments`), or with `review_first` send each to review
    (`proposals`; a crop-video has no frames to draw from, so it is assigned)."""
    if review_first and source is not None:
        return {"proposals": propose_video(gallery, result, source, name, species=species, actor=actor)}
    res = assign_video(gallery, result, name, enroll=enroll, species=species, threshold=threshold,
                       encounter=encounter)
    return {"assignments": [a.__dict__ for a in res]}


#: where a clip's clusters go: (clustering, frame source or None) -> {"assignments" | "proposals": [...]}
Place = Callable[[VideoClustering, Optional[FrameSource]], dict]


def clip_summary(result: VideoClustering, video: str) -> dict[str, Any]:
    """What every clip endpoint answers about its clustering."""
    return {"video": video, "k": result.k,
            "k_estimate": result.k_estimate.to_dict() if result.k_estimate else None,
            "cluster_sizes": result.cluster_sizes(),
            "timings_s": {key: round(v, 3) for key, v in result.timings.items() if isinstance(v, float)}}


def labelled_groups(detections_csv: bytes, images: list[Image.Image]
                    ) -> tuple[dict[str, list[Image.Image]], dict[str, tuple[list, list]]]:
    """A labelled clip (detections CSV frame,x,y,w,h,cluster and one image per frame): each cluster's crops, and
    its frames and boxes."""
    try:
        det = pd.read_csv(io.BytesIO(detections_csv))
    except Exception as exc:
        raise DataError(f"detections are not a readable CSV: {exc}") from exc
    need = {"frame", "x", "y", "w", "h", "cluster"}
    if not need <= set(det.columns):
        raise DataError(f"detections need the columns {sorted(need)}")
    if det["frame"].max() >= len(images) or det["frame"].min() < 0:
        raise DataError(f"detections refer to frame {int(det['frame'].max())} but {len(images)} frames came")
    groups: dict[str, list] = {}
    meta: dict[str, tuple[list, list]] = {}
    for r in det.itertuples():
        key = str(r.cluster)
        groups.setdefault(key, []).append(crop_box(images[int(r.frame)], (r.x, r.y, r.w, r.h)))
        meta.setdefault(key, ([], []))[0].append(int(r.frame))
        meta[key][1].append((r.x, r.y, r.w, r.h))
    return groups, meta


def identify_video_upload(model: Any, limits: ClipLimits, video: bytes, video_suffix: str, detections: bytes,
                          detections_suffix: str, name: str, config: ClusterConfig, detections_format: str,
                          min_score: float, place: Optional[Place], progress: Any) -> dict[str, Any]:
    """An uploaded video and its detections -> its animals (and, with `place`, where they went), with one row per
    detection [frame, x, y, w, h, label]."""
    with tempfile.TemporaryDirectory() as tmp:
        vpath = Path(tmp) / f"clip{video_suffix}"
        vpath.write_bytes(video)
        ext = detections_suffix if detections_suffix in (".json", ".txt", ".csv") else ".csv"
        dpath = Path(tmp) / f"detections{ext}"
        dpath.write_bytes(detections)
        progress(0.05, "decoding, embedding and clustering the clip")
        req = ClipRequest(name, video=vpath, detections=dpath, config=config, detections_format=detections_format,
                          min_score=min_score, cache_dir=Path(tmp) / "cache")
        result, source = cluster_clip(model, req, Path(tmp), limits)
        progress(0.85, "matching the clusters to the gallery")
        placed = place(result, source) if place is not None else {}
    out = clip_summary(result, name)
    out["detections"] = [[int(r.frame), round(r.x, 1), round(r.y, 1), round(r.w, 1), round(r.h, 1), int(r.label)]
                         for r in result.detections.itertuples()]
    return {**out, **placed}


def identify_crop_upload(model: Any, crops: pd.DataFrame, root: Path, workdir: Path, name: str,
                         config: ClusterConfig, place: Optional[Place], progress: Any) -> dict[str, Any]:
    """An uploaded crop-video (already unpacked under `root`) -> one label per input crop, in input order, and with
    `place` each cluster's persistent individual. Removes `workdir` when done."""
    try:
        progress(0.05, "embedding and clustering the crops")
        req = ClipRequest(name, crops=crops, config=config, min_score=0.0, cache_dir=Path(workdir) / "cache")
        result, _ = cluster_clip(model, req, Path(workdir))
        det = result.detections.sort_values("input_row", kind="stable")
        out = clip_summary(result, name)
        out["labels"] = [{"row": int(r.input_row), "frame": int(r.source_frame), "camera": str(r.camera),
                          "path": Path(r.path).resolve().relative_to(root).as_posix(), "label": int(r.label)}
                         for r in det.itertuples()]
        if place is not None:
            progress(0.85, "matching the clusters to the gallery")
            out["assignments"] = place(result, None)["assignments"]
        return out
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def assign_video(gallery: Any, result: VideoClustering, video_name: str, enroll: bool = True,
                 species: str = "", threshold: Optional[float] = None, encounter: Optional[str] = None) -> list:
    """Match (and with `enroll`, add) every cluster of a clustered video to the gallery's persistent
    individuals; videos of one `encounter` (e.g. the synchronized cameras of one recording) show the same
    animals. See gallery.assign_clip."""
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


__all__ = ["ClipLimits", "ClipRequest", "open_crop_archive", "cluster_clip", "place_clip", "assign_video",
           "propose_video", "Place", "clip_summary", "labelled_groups", "identify_video_upload",
           "identify_crop_upload"]
