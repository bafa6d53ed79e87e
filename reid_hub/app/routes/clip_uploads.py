"""Clips and crop-videos -> their animals -> persistent gallery IDs (or review proposals); jobs."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, UploadFile
from starlette.concurrency import run_in_threadpool

from ...errors import DataError, TooLargeError
from ...video import ClusterConfig
from ..clips import labelled_groups, open_crop_archive
from .kit import WAIT, RouteKit

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")


def _bounded(upload: UploadFile, limit: int, what: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise TooLargeError(f"{what} larger than {limit} bytes")
    return data


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["clips"])
    svc, token, heavy, cfg = kit.svc, kit.require_token(), kit.heavy(), kit.svc.cfg

    @r.post("/clips/assign", dependencies=[Depends(token), Depends(heavy)])
    async def clip_assign(video: str = Form(..., min_length=1), detections: UploadFile = File(...),
                          frames: list[UploadFile] = File(...), wait: Optional[float] = WAIT) -> Any:
        """Assign labeled groups of a clip (detections CSV: frame,x,y,w,h,cluster; one image per frame,
        uploaded in frame order) to persistent individuals."""
        raw = await detections.read(cfg.max_upload_bytes + 1)
        groups, meta = labelled_groups(raw, [await kit.image_of(f) for f in frames])
        return await run_in_threadpool(kit.as_job, "clips/assign",
                                       lambda progress: svc.assign_groups(groups, meta, video, progress), wait)

    @r.post("/clips/cluster", dependencies=[Depends(heavy)])
    def clip_cluster(video: UploadFile = File(...), detections: UploadFile = File(...),
                     k: Optional[int] = Form(default=None, ge=1, le=1000), video_name: str = Form(default=""),
                     assign: bool = Form(default=True), min_score: float = Form(default=0.5, ge=0.0, le=1.0),
                     detections_format: str = Form(default="auto"), review: bool = Form(default=False),
                     species: str = Form(default="", max_length=100),
                     encounter: str = Form(default="", max_length=200), actor: str = Depends(token),
                     wait: Optional[float] = WAIT) -> Any:
        """Identify every animal of an uploaded clip without labels (self-supervised head; k estimated
        when not given) and, with `assign`, give each cluster a persistent gallery ID (with `review`, each
        cluster becomes a review proposal instead: nothing enters the gallery before a person decides,
        unless the gallery's decision policy takes it alone). Detections: MegaDetector JSON, MOT txt, COCO JSON or
        CSV. A job."""
        name = Path(video.filename or "clip.mp4").name
        if Path(name).suffix.lower() not in VIDEO_SUFFIXES:
            raise DataError(f"expected a video file (mp4, avi, mov, mkv, m4v, webm), got {name!r}")
        data = _bounded(video, cfg.max_video_bytes, "video")
        raw = _bounded(detections, cfg.max_upload_bytes, "detections")
        det_suffix = Path(detections.filename or "d.csv").suffix.lower()

        def run(progress: Any) -> dict[str, Any]:
            return svc.clip_video(data, Path(name).suffix.lower(), raw, det_suffix, video_name or name,
                                  ClusterConfig(k=k), detections_format, min_score, assign, review, species,
                                  encounter or None, actor, progress)
        return kit.as_job("clips/cluster", run, wait)

    @r.post("/clips/crops", dependencies=[Depends(heavy)])
    def clip_crops(archive: UploadFile = File(...), k: Optional[int] = Form(default=None, ge=1, le=1000),
                   video_name: str = Form(default=""), assign: bool = Form(default=True),
                   species: str = Form(default="", max_length=100), encounter: str = Form(default="", max_length=200),
                   actor: str = Depends(token), wait: Optional[float] = WAIT) -> Any:
        """Identify every animal of an uploaded crop-video: a zip holding one crop table (CSV/Parquet with
        frame and path columns, optional camera: cameras are clustered jointly) and its crop images. Returns
        one label per input crop, in input order, and with `assign` each cluster's persistent gallery ID. The
        archive is checked before anything is extracted (4xx at once); the clustering is a job."""
        name = Path(archive.filename or "crops.zip").name
        data = _bounded(archive, cfg.max_video_bytes, "archive")
        tmp = Path(tempfile.mkdtemp(prefix="reid-hub-crops-"))
        try:
            (tmp / "crops.zip").write_bytes(data)
            root = (tmp / "crops").resolve()
            crops = open_crop_archive(tmp / "crops.zip", root, svc.clip_limits)  # checked before the job: a 4xx now
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

        def run(progress: Any) -> dict[str, Any]:
            return svc.clip_crops(crops, root, tmp, video_name or name, ClusterConfig(k=k), assign, species,
                                  encounter or None, progress)
        return kit.as_job("clips/crops", run, wait)

    return r
