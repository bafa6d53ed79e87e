"""The REST API of the retrieval service (FastAPI) over the ReidService facade; the Gradio UI (app.ui) mounts on it.

Every expected failure is answered with a 4xx and a JSON body {"error": type, "detail": text}; long work runs as
jobs (202 + /jobs/{id}).
"""

import io
import logging
import shutil
from pathlib import Path
from typing import Any, Optional

from PIL import Image

from ..data.imaging import crop_box
from ..discovery.pair_picture import pair_evidence
from ..errors import AuthError, DataError, ReidHubError, TooLargeError
from ..gallery import GalleryError, assign_clip, review
from ..gallery.camtrap import export_camtrap_dp
from ..gallery.identification import evidence
from ..gallery.recalibration import calibrate_open_set
from ..gallery.recalibration import recalibrate as recalibrate_gallery
from ..scoring.matchers.drawing import png_bytes
from ..video import ClusterConfig
from .clips import ClipRequest, cluster_clip, open_crop_archive, place_clip
from .jobs import DONE, FAILED
from .service import MAX_ID, MAX_WAIT_S, ReidService, ServiceConfig, http_status

log = logging.getLogger(__name__)


def create_api(cfg: ServiceConfig, model: Any = None):
    """The FastAPI application (OpenAPI at /docs and /openapi.json)."""
    from fastapi import Depends, FastAPI, File, Form, Header, HTTPException
    from fastapi import Path as PathParam
    from fastapi import Query, Request, Response, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse
    from pydantic import BaseModel, Field
    from starlette.concurrency import run_in_threadpool

    from .. import __version__

    svc = ReidService(cfg, model)
    app = FastAPI(title="reid-hub", version=__version__,
                  description="Animal re-identification: embed images and search a gallery of known individuals.")
    app.state.service = svc

    @app.exception_handler(ReidHubError)
    async def _reid_error(request: Request, exc: ReidHubError):
        return JSONResponse(status_code=http_status(type(exc).__name__),
                            content={"error": type(exc).__name__, "detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"error": "ValidationError",
                                                      "detail": [str(e.get("msg")) for e in exc.errors()]})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"error": "InternalError", "detail": type(exc).__name__})

    def require_token(authorization: Optional[str] = Header(default=None)) -> str:
        """The writer's name for the audit trail ("token" with a token, "local" without one)."""
        try:
            return svc.authorize(authorization)
        except AuthError:
            raise HTTPException(status_code=401, detail="a valid bearer token is required for writes") from None

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return JSONResponse(status_code=exc.status_code, content={"error": "HTTPError", "detail": exc.detail})

    def heavy(request: Request) -> None:
        """Per-client rate limit of the expensive endpoints."""
        svc.limiter.check(request.client.host if request.client else "unknown")

    async def image_of(file: UploadFile) -> Image.Image:
        data = await file.read(cfg.max_upload_bytes + 1)
        return svc.read_upload(data, file.content_type)

    class NewIndividual(BaseModel):
        display_name: str = Field(min_length=1, max_length=200)
        species: str = Field(default="", max_length=100)
        notes: str = Field(default="", max_length=2000)

    class Rename(BaseModel):
        display_name: str = Field(min_length=1, max_length=200)

    class Merge(BaseModel):
        absorb: str = Field(min_length=1)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "gallery_images": len(svc.gallery), "individuals": len(svc.gallery.individuals())}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        m = svc.model
        return {"name": m.config.name, "backbone": m.config.backbone, "embedding_dim": m.embedding_dim,
                "input_size": m.config.preprocess.size, "fingerprint": m.fingerprint()}

    @app.post("/embed")
    async def embed(file: UploadFile = File(...)) -> dict[str, Any]:
        emb = svc.embed(await image_of(file))
        return {"dim": int(emb.shape[1]), "embedding": emb[0].tolist()}

    @app.post("/search")
    async def search(file: UploadFile = File(...), k: int = Form(5, ge=1, le=100)) -> dict[str, Any]:
        return svc.search(await image_of(file), k=k)

    @app.post("/identify", dependencies=[Depends(heavy)])
    async def identify(file: UploadFile = File(...), k: int = Form(5, ge=1, le=100),
                       species: str = Form(default="", max_length=100),
                       shortlist: Optional[int] = Form(default=None, ge=1, le=1000)) -> dict[str, Any]:
        """Global shortlist -> local-feature verification -> calibrated P(same individual) -> the decision policy:
        accept / new where its held-out precision reaches the gallery's target, else review (`p_new`,
        `decision_precision`, `coverage` at the top level); each verified match links its evidence picture."""
        return svc.identify(await image_of(file), k=k, species=species, shortlist=shortlist)

    @app.post("/identify/evidence.png", dependencies=[Depends(heavy)])
    async def identify_evidence(file: UploadFile = File(...), image_id: int = Query(..., ge=0, le=MAX_ID)):
        """The query (uploaded again) beside gallery image `image_id`, verified matches drawn (PNG)."""
        return Response(content=svc.evidence(await image_of(file), image_id), media_type="image/png")

    def as_job(kind: str, fn: Any, wait: Optional[float]) -> Any:
        """Run `fn(progress)` as a job; its result when it ends within the wait, else 202 and the job to poll."""
        job_id = svc.jobs.submit(kind, fn)
        job = svc.jobs.wait(job_id, cfg.sync_wait_s if wait is None else wait)
        if job["state"] == DONE:
            return job["result"]
        if job["state"] == FAILED:
            return JSONResponse(status_code=http_status(job["error"]["error"]), content=job["error"])
        return JSONResponse(status_code=202, headers={"Location": f"/jobs/{job_id}"},
                            content={**{k: job[k] for k in ("job_id", "kind", "state", "progress", "message")},
                                     "poll": f"/jobs/{job_id}"})

    Wait = Query(default=None, ge=0, le=MAX_WAIT_S, description="seconds to wait for the job before answering "
                 "202 with its id (default: the server's sync_wait_s)")

    @app.get("/jobs/{job_id}")
    def job(job_id: str = PathParam(min_length=1, max_length=64, pattern="^[0-9a-f]+$")) -> dict[str, Any]:
        """A job's state (queued, running, done, failed, interrupted), progress, and its result or error."""
        got = svc.jobs.get(job_id)
        if got is None:
            raise GalleryError(f"no job {job_id}")
        return got

    @app.get("/jobs")
    def jobs(limit: int = Query(default=50, ge=1, le=500)) -> list[dict[str, Any]]:
        """The newest jobs (without their results)."""
        return svc.jobs.recent(limit)

    @app.post("/recalibrate", dependencies=[Depends(require_token)])
    def recalibrate(kind: str = Form(default="isotonic", pattern="^(isotonic|logistic)$"),
                    wait: Optional[float] = Wait) -> Any:
        """Refit P(same individual) per species on the gallery's own individuals (a job)."""
        def run(progress: Any) -> dict[str, Any]:
            with svc.lock:
                return recalibrate_gallery(svc.gallery, kind=kind, progress=progress)
        return as_job("recalibrate", run, wait)

    class Decision(BaseModel):
        action: str = Field(pattern="^(confirm|reject|new|undo)$")
        individual_id: Optional[str] = Field(default=None, max_length=100)
        display_name: Optional[str] = Field(default=None, max_length=200)
        force: bool = False
        expected_version: Optional[int] = Field(default=None, ge=0)

    @app.post("/review/propose", status_code=201, dependencies=[Depends(heavy)])
    async def review_propose(actor: str = Depends(require_token), file: UploadFile = File(...),
                             species: str = Form(default="", max_length=100)) -> dict[str, Any]:
        """Identify an image and queue the decision for review (with auto-accept on, accepted or minted new
        where the decision policy's held-out precision reaches the gallery's target)."""

        img = await image_of(file)
        emb = svc.embed(img)
        with svc.lock:
            return review.propose(svc.gallery, emb, img, species=species, source=file.filename or "upload",
                                  images=[img], actor=actor)

    @app.get("/review")
    def review_list(offset: int = Query(0, ge=0, le=MAX_ID), limit: int = Query(20, ge=1, le=200),
                    status: str = Query("pending", pattern="^(pending|confirmed|new|auto-accepted)$")) -> dict[str, Any]:
        """Proposals with this status, oldest first, paginated."""
        with svc.lock:
            items, total = review.pending(svc.gallery, offset, limit, status)
        return {"total": total, "offset": offset, "limit": limit, "items": [p.to_dict() for p in items]}

    @app.get("/review/{proposal_id}")
    def review_show(proposal_id: int = PathParam(ge=0, le=MAX_ID)) -> dict[str, Any]:
        with svc.lock:
            return {**review.get(svc.gallery, proposal_id).to_dict(),
                    "audit": review.audit_log(svc.gallery, proposal_id)}

    @app.post("/review/{proposal_id}")
    def review_decide(body: Decision, proposal_id: int = PathParam(ge=0, le=MAX_ID),
                      actor: str = Depends(require_token)) -> dict[str, Any]:
        """confirm / reject / new / undo; a retried decision returns the recorded one, a different decision on a
        decided proposal (or a stale expected_version) is a 409."""

        return svc.decide(proposal_id, body.action, actor, individual_id=body.individual_id,
                          display_name=body.display_name, force=body.force, expected_version=body.expected_version)

    @app.get("/review/{proposal_id}/evidence.png")
    def review_evidence(proposal_id: int = PathParam(ge=0, le=MAX_ID), individual_id: Optional[str] = Query(default=None)):
        """The proposal's query beside its current (or the named) candidate's best image, matches drawn."""
        with svc.lock:
            p = review.get(svc.gallery, proposal_id)
            cand = next((c for c in p.candidates if c["individual_id"] == individual_id), None) if individual_id \
                else p.current
            if cand is None:
                raise GalleryError(f"proposal {proposal_id} has no candidate {individual_id or ''}".strip())
            pic = evidence(svc.gallery, review.query_image(svc.gallery, proposal_id), cand["image_id"])
        return Response(content=png_bytes(pic), media_type="image/png")

    @app.get("/export/camtrap-dp", dependencies=[Depends(require_token)])
    def export_camtrap():
        """The gallery's sightings and images as a Camtrap DP data package (zip) with individualID filled."""
        import tempfile

        tmp = Path(tempfile.mkdtemp()) / "camtrap-dp.zip"
        with svc.lock:
            export_camtrap_dp(svc.gallery, tmp)
        return Response(content=tmp.read_bytes(), media_type="application/zip",
                        headers={"Content-Disposition": "attachment; filename=camtrap-dp.zip"})

    @app.get("/individuals")
    def individuals() -> list[dict[str, Any]]:
        with svc.lock:
            return svc.gallery.individuals()

    @app.post("/individuals", status_code=201, dependencies=[Depends(require_token)])
    def add_individual(body: NewIndividual) -> dict[str, str]:
        with svc.lock:
            return {"individual_id": svc.gallery.add_individual(body.display_name, body.species, body.notes)}

    @app.post("/individuals/{iid}/images", status_code=201, dependencies=[Depends(require_token)])
    async def enroll(iid: str, file: UploadFile = File(...)) -> dict[str, Any]:
        img = await image_of(file)
        return {"individual_id": iid, "image_id": svc.enroll(iid, img, source=file.filename or "upload")}

    @app.patch("/individuals/{iid}", dependencies=[Depends(require_token)])
    def rename(iid: str, body: Rename) -> dict[str, str]:
        with svc.lock:
            svc.gallery.rename(iid, body.display_name)
        return {"individual_id": iid, "display_name": body.display_name}

    @app.post("/individuals/{iid}/merge")
    def merge(iid: str, body: Merge, actor: str = Depends(require_token)) -> dict[str, str]:
        with svc.lock:
            svc.gallery.merge(iid, body.absorb, actor=actor)
        return {"individual_id": iid, "absorbed": body.absorb}

    @app.post("/calibrate", dependencies=[Depends(require_token)])
    def calibrate() -> dict[str, Any]:
        with svc.lock:
            return calibrate_open_set(svc.gallery)

    @app.get("/images/{image_id}/thumbnail")
    def thumbnail(image_id: int = PathParam(ge=0, le=MAX_ID)):
        path = svc.gallery.thumbnail_path(image_id)
        if path is None:
            raise GalleryError(f"no thumbnail for image {image_id}")
        return FileResponse(path, media_type="image/jpeg")

    @app.post("/clips/assign", dependencies=[Depends(require_token), Depends(heavy)])
    async def clip_assign(video: str = Form(..., min_length=1), detections: UploadFile = File(...),
                          frames: list[UploadFile] = File(...), wait: Optional[float] = Wait) -> Any:
        """Assign labeled groups of a clip (detections CSV: frame,x,y,w,h,cluster; one image per frame,
        uploaded in frame order) to persistent individuals."""
        import pandas as pd

        raw = await detections.read(cfg.max_upload_bytes + 1)
        try:
            det = pd.read_csv(io.BytesIO(raw))
        except Exception as exc:
            raise DataError(f"detections are not a readable CSV: {exc}") from exc
        need = {"frame", "x", "y", "w", "h", "cluster"}
        if not need <= set(det.columns):
            raise DataError(f"detections need the columns {sorted(need)}")
        images = [await image_of(f) for f in frames]
        if det["frame"].max() >= len(images) or det["frame"].min() < 0:
            raise DataError(f"detections refer to frame {int(det['frame'].max())} but {len(images)} frames came")
        groups: dict[str, list] = {}
        meta: dict[str, tuple[list, list]] = {}
        for r in det.itertuples():
            key = str(r.cluster)
            groups.setdefault(key, []).append(crop_box(images[int(r.frame)], (r.x, r.y, r.w, r.h)))
            meta.setdefault(key, ([], []))[0].append(int(r.frame))
            meta[key][1].append((r.x, r.y, r.w, r.h))

        def run(progress: Any) -> dict[str, Any]:
            progress(0.1, "embedding the crops")
            clusters = {k: svc.model.embed(v) for k, v in groups.items()}
            progress(0.8, "assigning the clusters")
            with svc.lock:
                res = assign_clip(svc.gallery, clusters, video=video, frames={k: m[0] for k, m in meta.items()},
                                  boxes={k: m[1] for k, m in meta.items()})
            return {"video": video, "assignments": [a.__dict__ for a in res]}
        return await run_in_threadpool(as_job, "clips/assign", run, wait)

    def clip_summary(result: Any, video: str) -> dict[str, Any]:
        """What every clip endpoint answers about its clustering."""
        return {"video": video, "k": result.k,
                "k_estimate": result.k_estimate.to_dict() if result.k_estimate else None,
                "cluster_sizes": result.cluster_sizes(),
                "timings_s": {key: round(v, 3) for key, v in result.timings.items() if isinstance(v, float)}}

    def assign_clusters(result: Any, video: str, species: str, encounter: str) -> list[dict[str, Any]]:
        return place_clip(svc.gallery, result, None, video, species=species, encounter=encounter or None,
                          lock=svc.lock)["assignments"]

    @app.post("/clips/cluster", dependencies=[Depends(heavy)])
    def clip_cluster(video: UploadFile = File(...), detections: UploadFile = File(...),
                     k: Optional[int] = Form(default=None, ge=1, le=1000), video_name: str = Form(default=""),
                     assign: bool = Form(default=True), min_score: float = Form(default=0.5, ge=0.0, le=1.0),
                     detections_format: str = Form(default="auto"), review: bool = Form(default=False),
                     species: str = Form(default="", max_length=100),
                     encounter: str = Form(default="", max_length=200), actor: str = Depends(require_token),
                     wait: Optional[float] = Wait) -> Any:
        """Identify every animal of an uploaded clip without labels (self-supervised head; k estimated
        when not given) and, with `assign`, give each cluster a persistent gallery ID (with `review`, each
        cluster becomes a review proposal instead: nothing enters the gallery before a person decides,
        unless the gallery auto-accepts it). Detections: MegaDetector JSON, MOT txt, COCO JSON or CSV. A job."""
        name = Path(video.filename or "clip.mp4").name
        suffix = Path(name).suffix.lower()
        if suffix not in (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"):
            raise DataError(f"expected a video file (mp4, avi, mov, mkv, m4v, webm), got {name!r}")
        data = video.file.read(cfg.max_video_bytes + 1)
        if len(data) > cfg.max_video_bytes:
            raise TooLargeError(f"video larger than {cfg.max_video_bytes} bytes")
        det_suffix = Path(detections.filename or "d.csv").suffix.lower()
        raw = detections.file.read(cfg.max_upload_bytes + 1)
        if len(raw) > cfg.max_upload_bytes:
            raise TooLargeError(f"detections larger than {cfg.max_upload_bytes} bytes")

        def run(progress: Any) -> dict[str, Any]:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                vpath = Path(tmp) / f"clip{suffix}"
                vpath.write_bytes(data)
                dpath = Path(tmp) / f"detections{det_suffix if det_suffix in ('.json', '.txt', '.csv') else '.csv'}"
                dpath.write_bytes(raw)
                progress(0.05, "decoding, embedding and clustering the clip")
                req = ClipRequest(video_name or name, video=vpath, detections=dpath, config=ClusterConfig(k=k),
                                  detections_format=detections_format, min_score=min_score,
                                  cache_dir=Path(tmp) / "cache")
                result, source = cluster_clip(svc.model, req, Path(tmp), svc.clip_limits)
                progress(0.85, "matching the clusters to the gallery")
                placed = place_clip(svc.gallery, result, source, video_name or name, review_first=review,
                                    species=species, encounter=encounter or None, actor=actor,
                                    lock=svc.lock) if review or assign else {}
            out = clip_summary(result, video_name or name)
            out["detections"] = [[int(r.frame), round(r.x, 1), round(r.y, 1), round(r.w, 1), round(r.h, 1),
                                  int(r.label)] for r in result.detections.itertuples()]
            return {**out, **placed}
        return as_job("clips/cluster", run, wait)

    @app.post("/clips/crops", dependencies=[Depends(heavy)])
    def clip_crops(archive: UploadFile = File(...), k: Optional[int] = Form(default=None, ge=1, le=1000),
                   video_name: str = Form(default=""), assign: bool = Form(default=True),
                   species: str = Form(default="", max_length=100), encounter: str = Form(default="", max_length=200),
                   actor: str = Depends(require_token), wait: Optional[float] = Wait) -> Any:
        """Identify every animal of an uploaded crop-video: a zip holding one crop table (CSV/Parquet with
        frame and path columns, optional camera: cameras are clustered jointly) and its crop images. Returns
        one label per input crop, in input order, and with `assign` each cluster's persistent gallery ID. The
        archive is checked before anything is extracted (4xx at once); the clustering is a job."""
        import tempfile

        name = Path(archive.filename or "crops.zip").name
        data = archive.file.read(cfg.max_video_bytes + 1)
        if len(data) > cfg.max_video_bytes:
            raise TooLargeError(f"archive larger than {cfg.max_video_bytes} bytes")
        tmp = tempfile.mkdtemp(prefix="reid-hub-crops-")
        try:
            zpath = Path(tmp) / "crops.zip"
            zpath.write_bytes(data)
            root = (Path(tmp) / "crops").resolve()
            crops = open_crop_archive(zpath, root, svc.clip_limits)  # checked before the job: a 4xx at once
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

        def run(progress: Any) -> dict[str, Any]:
            try:
                progress(0.05, "embedding and clustering the crops")
                req = ClipRequest(video_name or name, crops=crops, config=ClusterConfig(k=k), min_score=0.0,
                                  cache_dir=Path(tmp) / "cache")
                result, _ = cluster_clip(svc.model, req, Path(tmp))
                det = result.detections.sort_values("input_row", kind="stable")
                out = clip_summary(result, video_name or name)
                out["labels"] = [{"row": int(r.input_row), "frame": int(r.source_frame), "camera": str(r.camera),
                                  "path": Path(r.path).resolve().relative_to(root).as_posix(), "label": int(r.label)}
                                 for r in det.itertuples()]
                if assign:
                    progress(0.85, "matching the clusters to the gallery")
                    out["assignments"] = assign_clusters(result, video_name or name, species, encounter)
                return out
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return as_job("clips/crops", run, wait)

    class PairAnswer(BaseModel):
        a: int = Field(ge=0, le=10_000_000)
        b: int = Field(ge=0, le=10_000_000)
        answer: str = Field(pattern="^(same|different|skip|undo)$")

    @app.get("/discovery")
    def discovery_summary() -> dict[str, Any]:
        with svc.lock:
            return svc.discovery.summary()

    @app.get("/discovery/questions")
    def discovery_questions(limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
        return svc.discovery_questions(limit)

    @app.get("/discovery/evidence.png", dependencies=[Depends(heavy)])
    def discovery_evidence(a: int = Query(..., ge=0, le=10_000_000), b: int = Query(..., ge=0, le=10_000_000)):
        from fastapi.responses import Response

        with svc.lock:
            d = svc.discovery
        return Response(pair_evidence(d, a, b), media_type="image/png")

    @app.post("/discovery/answers")
    def discovery_answer(body: PairAnswer, actor: str = Depends(require_token)) -> dict[str, Any]:
        return svc.discovery_answer(body.a, body.b, body.answer, actor)

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The schema with the 422 body this service really sends, not FastAPI's default: every error is
        {"error": its public name (ValidationError, DataError, ...), "detail": a message or a list of them}."""
        if app.openapi_schema is None:
            schema = default_openapi()
            comps = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in comps:
                comps["HTTPValidationError"] = {
                    "title": "HTTPValidationError", "type": "object", "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"},
                                   "detail": {"anyOf": [{"type": "string"},
                                                        {"type": "array", "items": {"type": "string"}}]}}}
                comps.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


__all__ = ["create_api"]
