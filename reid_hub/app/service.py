"""The service facade: one model, one gallery, the lock every method takes itself, the upload limits, the token and
the rate limits; the one door of the REST API (app.routes) and the UI (app.ui).

Every expected failure is answered with a 4xx and a JSON body {"error": type, "detail": text};
uploads are checked for size, content type, pixel count and decodability before use.
"""

import hmac
import io
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from .. import errors
from ..data.imaging import MAX_IMAGE_PIXELS, load_image
from ..errors import (AuthError, ConfigError, ConflictError, DataError, ImageError, ModelMismatchError, OfflineError,
                      RateLimitedError, ReidHubError, TooLargeError, UnknownModelError)
from ..gallery import Gallery, GalleryError, assign_clip, open_gallery, review
from ..gallery.identification import evidence, identify
from ..gallery.recalibration import calibrate_open_set
from ..gallery.recalibration import recalibrate as recalibrate_gallery
from ..models.loading import DEFAULT_MODEL, from_pretrained
from .clips import ClipLimits, cluster_clip, identify_crop_upload, identify_video_upload, place_clip
from .jobs import JobStore

log = logging.getLogger(__name__)

#: the largest id or offset a request may name (SQLite integers are 64-bit: beyond, a query would overflow)
MAX_ID = 2**62

_STATUS = [(TooLargeError, 413), (RateLimitedError, 429), (AuthError, 401), (UnknownModelError, 404), (ImageError, 415), (ModelMismatchError, 409), (ConflictError, 409),
           (GalleryError, 404),
           (DataError, 422), (ConfigError, 400), (OfflineError, 503), (ReidHubError, 400)]


def http_status(error: str) -> int:
    """The HTTP status of the reid-hub error class named `error` (its nearest listed base class decides);
    500 for any other name (InternalError)."""
    cls = getattr(errors, error, None)
    if not (isinstance(cls, type) and issubclass(cls, ReidHubError)):
        return 500
    return next(code for base, code in _STATUS if issubclass(cls, base))


#: the longest a request may wait for its job before it answers 202
MAX_WAIT_S = 600.0


@dataclass
class ServiceConfig:
    """Settings of the service, validated when it starts."""

    model: str = DEFAULT_MODEL
    gallery_dir: str = ""  # required: the gallery folder the service reads and writes
    token: Optional[str] = None  # write endpoints need "Authorization: Bearer <token>" when set
    token_name: str = "token"  # who the token is, in the audit trail of review decisions
    public: bool = False  # exposed to anyone (a Space): without a token the shared gallery is read-only
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_video_bytes: int = 200 * 1024 * 1024
    heavy_per_minute: int = 30  # identify / evidence / video requests per client and minute (0: no limit)
    discovery_dir: Optional[str] = None  # an output folder of `reid-hub discover`: its questions are served
    # long work (recalibration, clips) runs as a job: a request waits this long for it (its `wait` query
    # parameter overrides), then answers 202 with the job to poll at GET /jobs/{id}
    sync_wait_s: float = 5.0

    def validate(self) -> "ServiceConfig":
        if not self.gallery_dir:
            raise ConfigError("the service needs a gallery folder (gallery_dir)")
        if self.max_upload_bytes < 1024 or self.max_pixels < 1024 or self.max_video_bytes < 1024:
            raise ConfigError("upload limits are too small")
        if self.heavy_per_minute < 0:
            raise ConfigError("heavy_per_minute must be 0 (no limit) or more")
        if not 0 <= self.sync_wait_s <= MAX_WAIT_S:
            raise ConfigError(f"sync_wait_s lies in [0, {MAX_WAIT_S}]")
        if self.max_pixels > MAX_IMAGE_PIXELS:
            raise ConfigError(f"max_pixels may not exceed {MAX_IMAGE_PIXELS}")
        return self


class RateLimiter:
    """A token bucket per client: `per_minute` heavy requests a minute, bursts up to the same number."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        import time

        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self.per_minute / 60.0)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                raise RateLimitedError(f"more than {self.per_minute} heavy requests a minute from {client}: "
                                       "wait a little")
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle clients
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 120}


class ReidService:
    """The one door to the model and the gallery for the API and the UI: every action is a method here, and the
    methods that read or write the gallery take the service's lock themselves (callers never do)."""

    def __init__(self, cfg: ServiceConfig, model: Any = None) -> None:
        self.cfg = cfg.validate()
        self.model = model if model is not None else from_pretrained(cfg.model)
        self._gallery: Gallery = open_gallery(cfg.gallery_dir, self.model)
        self._lock = threading.RLock()
        #: one clip flow (app.clips) for the API and the UI, with the same limits
        self.clip_limits = ClipLimits(max_bytes=cfg.max_video_bytes)
        self.limiter = RateLimiter(cfg.heavy_per_minute)
        self.jobs = JobStore(Path(cfg.gallery_dir) / "jobs.sqlite")
        self._sessions: Any = None
        self._discovery: Any = None

    # -- the gallery, read ------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with self._lock:
            return {"status": "ok", "gallery_images": len(self._gallery),
                    "individuals": len(self._gallery.individuals())}

    def model_info(self) -> dict[str, Any]:
        m = self.model
        return {"name": m.config.name, "backbone": m.config.backbone, "embedding_dim": m.embedding_dim,
                "input_size": m.config.preprocess.size, "fingerprint": m.fingerprint()}

    def overview(self) -> dict[str, Any]:
        """What the gallery holds: individuals, images and species."""
        with self._lock:
            inds, n_img = self._gallery.individuals(), len(self._gallery)
        return {"individuals": len(inds), "images": n_img,
                "species": sorted({i["species"] for i in inds if i["species"]})}

    def individuals(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._gallery.individuals()

    def thumbnail_path(self, image_id: int) -> Path:
        """The stored thumbnail of a gallery image; GalleryError (404) when it has none."""
        with self._lock:
            path = self._gallery.thumbnail_path(int(image_id))
        if path is None:
            raise GalleryError(f"no thumbnail for image {image_id}")
        return path

    def thumbnail(self, image_id: int) -> Optional[Image.Image]:
        """The thumbnail as a picture, or None."""
        try:
            return Image.open(self.thumbnail_path(image_id)).convert("RGB")
        except GalleryError:
            return None

    # -- identification -----------------------------------------------------------------------------------------
    def embed(self, img: Image.Image) -> np.ndarray:
        return self.model.embed([img])

    def search(self, img: Image.Image, k: int = 5) -> dict[str, Any]:
        emb = self.embed(img)
        with self._lock:
            res = self._gallery.search(emb, k=k)[0]
        return {"is_new": res.is_new, "threshold": res.threshold,
                "matches": [{"individual_id": m.individual_id, "display_name": m.display_name, "species": m.species,
                             "score": m.score, "images": m.images} for m in res.matches]}

    def identify(self, img: Image.Image, k: int = 5, species: Optional[str] = None,
                 shortlist: Optional[int] = None) -> dict[str, Any]:
        """Coarse-to-fine identification: verified candidates, P(same individual), the decision policy's
        accept / review / new with P(new) and the decision's held-out precision."""
        emb = self.embed(img)
        with self._lock:
            res = identify(self._gallery, emb, img, species=species or None, k=k, shortlist=shortlist)
        out = res.to_dict()
        for m in out["matches"]:
            m["evidence"] = f"/identify/evidence.png?image_id={m['image_id']}" if m["matcher"] else None
        return out

    def evidence_image(self, img: Image.Image, image_id: int) -> Image.Image:
        """The query beside a gallery image with their verified keypoint matches."""
        with self._lock:
            return evidence(self._gallery, img, int(image_id))

    def evidence(self, img: Image.Image, image_id: int) -> bytes:
        """`evidence_image` as PNG bytes."""
        from ..scoring.matchers.drawing import png_bytes

        return png_bytes(self.evidence_image(img, image_id))

    # -- the gallery, written -----------------------------------------------------------------------------------
    def add_individual(self, display_name: str, species: str = "", notes: str = "") -> str:
        with self._lock:
            return self._gallery.add_individual(display_name, species, notes)

    def enroll(self, iid: str, img: Image.Image, source: str = "upload") -> int:
        emb = self.embed(img)
        with self._lock:
            return self._gallery.enroll(iid, emb, sources=[source], images=[img])[0]

    def enroll_new(self, display_name: str, species: str, img: Image.Image, source: str) -> tuple[str, int]:
        """A new individual with its first photo: (individual id, image id)."""
        emb = self.embed(img)
        with self._lock:
            iid = self._gallery.add_individual(display_name, species=species)
            return iid, self._gallery.enroll(iid, emb, sources=[source], images=[img])[0]

    def rename(self, iid: str, display_name: str) -> None:
        with self._lock:
            self._gallery.rename(iid, display_name)

    def merge(self, keep: str, absorb: str, actor: str) -> None:
        with self._lock:
            self._gallery.merge(keep, absorb, actor=actor)

    def calibrate(self) -> dict[str, Any]:
        """The open-set threshold on the global score, from the gallery's own individuals."""
        with self._lock:
            return calibrate_open_set(self._gallery)

    def recalibrate(self, kind: str = "isotonic", progress: Any = None) -> dict[str, Any]:
        """P(same individual) and the decision policy per species, refitted on the gallery's own individuals."""
        with self._lock:
            return recalibrate_gallery(self._gallery, kind=kind, progress=progress)

    def export_camtrap(self, path: Path) -> Path:
        """The gallery's sightings and images as a Camtrap DP package (zip) at `path`."""
        from ..gallery.camtrap import export_camtrap_dp

        with self._lock:
            return export_camtrap_dp(self._gallery, path)

    # -- review -------------------------------------------------------------------------------------------------
    def propose(self, img: Image.Image, species: str, source: str, actor: str) -> dict[str, Any]:
        """Identify an image and queue the decision for review (taken at once where the policy allows it)."""
        emb = self.embed(img)
        with self._lock:
            return review.propose(self._gallery, emb, img, species=species, source=source, images=[img],
                                  actor=actor)

    def review_list(self, offset: int = 0, limit: int = 50, status: str = "pending") -> dict[str, Any]:
        with self._lock:
            items, total = review.pending(self._gallery, offset, limit, status)
        return {"total": total, "items": [p.to_dict() for p in items]}

    def review_item(self, proposal_id: int) -> dict[str, Any]:
        """A proposal with its audit trail."""
        with self._lock:
            return {**review.get(self._gallery, proposal_id).to_dict(),
                    "audit": review.audit_log(self._gallery, proposal_id)}

    def review_next(self, proposal_id: Optional[int] = None) -> Optional[dict[str, Any]]:
        """The proposal `proposal_id` (or the oldest pending one, None when none waits) with its query picture, its
        current candidate's thumbnail and evidence picture, and how many are pending."""
        with self._lock:
            if proposal_id is None:
                items, total = review.pending(self._gallery, 0, 1)
                if not items:
                    return None
                p = items[0]
            else:
                p, total = review.get(self._gallery, int(proposal_id)), None
            query = review.query_image(self._gallery, p.id)
            cand = p.current
            try:
                pic = evidence(self._gallery, query, cand["image_id"]) if cand and cand.get("matcher") else None
            except ReidHubError:
                pic = None
        return {"proposal": p, "pending": total, "query": query, "candidate": cand, "evidence": pic,
                "thumbnail": self.thumbnail(cand["image_id"]) if cand else None}

    def review_evidence(self, proposal_id: int, individual_id: Optional[str] = None) -> bytes:
        """PNG: the proposal's query beside its current (or the named) candidate's best image, matches drawn."""
        from ..scoring.matchers.drawing import png_bytes

        with self._lock:
            p = review.get(self._gallery, proposal_id)
            cand = (next((c for c in p.candidates if c["individual_id"] == individual_id), None) if individual_id
                    else p.current)
            if cand is None:
                raise GalleryError(f"proposal {proposal_id} has no candidate {individual_id or ''}".strip())
            return png_bytes(evidence(self._gallery, review.query_image(self._gallery, proposal_id),
                                      cand["image_id"]))

    def decide(self, proposal_id: int, action: str, actor: str, **kwargs: Any) -> dict[str, Any]:
        """One review decision (see `gallery.review.decide`); when the served discovery sent that proposal, the
        decision reaches its answers at once (and it regroups)."""
        with self._lock:
            out = review.decide(self._gallery, proposal_id, action, actor=actor, **kwargs)
            if self._discovery is not None and self._feeds_discovery():
                from ..discovery.review_feed import feed_review_decisions

                fed = feed_review_decisions(self._discovery.answers, self._gallery, Path(self.cfg.discovery_dir))
                if fed["recorded"] or fed["withdrawn"]:
                    self._discovery.learn()
                    self._discovery.write(self.cfg.discovery_dir)
            return out

    # -- clips --------------------------------------------------------------------------------------------------
    def assign_groups(self, groups: dict[str, list[Image.Image]], meta: dict[str, tuple[list, list]], video: str,
                      progress: Any) -> dict[str, Any]:
        """The labelled groups of one clip (their crops, frames and boxes) -> persistent individuals."""
        progress(0.1, "embedding the crops")
        clusters = {k: self.model.embed(v) for k, v in groups.items()}
        progress(0.8, "assigning the clusters")
        with self._lock:
            res = assign_clip(self._gallery, clusters, video=video, frames={k: m[0] for k, m in meta.items()},
                              boxes={k: m[1] for k, m in meta.items()})
        return {"video": video, "assignments": [a.__dict__ for a in res]}

    def clip_video(self, video: bytes, video_suffix: str, detections: bytes, detections_suffix: str, name: str,
                   config: Any, detections_format: str, min_score: float, place: bool, review_first: bool,
                   species: str, encounter: Optional[str], actor: str, progress: Any) -> dict[str, Any]:
        """An uploaded clip -> its animals, and with `place` (or `review_first`) their persistent IDs (proposals)."""
        def put(result: Any, source: Any) -> dict[str, list]:
            return self.place_clip(result, source, name, review_first=review_first, species=species,
                                   encounter=encounter, actor=actor)
        return identify_video_upload(self.model, self.clip_limits, video, video_suffix, detections,
                                     detections_suffix, name, config, detections_format, min_score,
                                     put if place or review_first else None, progress)

    def clip_crops(self, crops: Any, root: Path, workdir: Path, name: str, config: Any, place: bool, species: str,
                   encounter: Optional[str], progress: Any) -> dict[str, Any]:
        """An unpacked crop-video -> one label per crop, and with `place` each animal's persistent ID."""
        def put(result: Any, source: Any) -> dict[str, list]:
            return self.place_clip(result, source, name, species=species, encounter=encounter)
        return identify_crop_upload(self.model, crops, root, workdir, name, config, put if place else None, progress)

    def cluster_clip(self, req: Any, workdir: Path) -> tuple[Any, Any]:
        """A clip of the service's own (`ClipRequest`) -> its animals and its frames, within the upload limits."""
        return cluster_clip(self.model, req, workdir, self.clip_limits)

    def place_clip(self, result: Any, source: Any, name: str, review_first: bool = False, species: str = "",
                   encounter: Optional[str] = None, actor: str = "local") -> dict[str, list]:
        """A clustered clip's animals -> persistent individuals, or review proposals (see app.clips.place_clip)."""
        with self._lock:
            return place_clip(self._gallery, result, source, name, review_first=review_first, species=species,
                              encounter=encounter, actor=actor)

    # -- discovery ----------------------------------------------------------------------------------------------
    @property
    def discovery(self) -> Any:
        """The served discovery (opened on first use); GalleryError when the service has none."""
        if self.cfg.discovery_dir is None:
            raise GalleryError("this service serves no discovery folder (start it with --discovery DIR)")
        with self._lock:
            if self._discovery is None:
                from ..discovery.run import open_discovery

                self._discovery = open_discovery(self.cfg.discovery_dir)
            return self._discovery

    def _feeds_discovery(self) -> bool:
        """Whether the served discovery sent its individuals to this service's gallery."""
        from ..discovery.run import discovery_gallery

        sent = discovery_gallery(self.cfg.discovery_dir)
        return sent is not None and sent.resolve() == Path(self.cfg.gallery_dir).resolve()

    def discovery_summary(self) -> dict[str, Any]:
        with self._lock:
            return self.discovery.summary()

    def discovery_evidence(self, a: int, b: int) -> bytes:
        """PNG: two rows of the served discovery side by side with their matches."""
        from ..discovery.question_pictures import pair_evidence

        with self._lock:
            return pair_evidence(self.discovery, a, b)

    def discovery_questions(self, limit: int = 20) -> dict[str, Any]:
        """The next pair questions of the served discovery, with what is known of the grouping."""
        with self._lock:
            d = self.discovery
            table = d.question_table(limit)
            return {"individuals": int(d.labels.max()) + 1 if len(d.labels) else 0,
                    "answers": len(d.answered()), "questions": table.to_dict("records")}

    def discovery_answer(self, a: int, b: int, answer: str, actor: str) -> dict[str, Any]:
        """Record an answer (same / different / skip, or undo), regroup what it touches, and bring the folder's
        individuals and summary up to date."""
        with self._lock:
            d = self.discovery
            t0 = time.perf_counter()
            if answer == "undo":
                d.undo(actor)
            else:
                d.answer(a, b, answer, actor)
            return self._discovery_saved(d, t0)

    def discovery_group_questions(self, limit: int = 5) -> dict[str, Any]:
        """The next group questions of the served discovery: a discovered individual's images and the groups
        beside it."""
        with self._lock:
            d = self.discovery
            return {"individuals": int(d.labels.max()) + 1 if len(d.labels) else 0,
                    "answers": len(d.answered()), "questions": d.group_rows(limit)}

    def discovery_group_answer(self, rows: list[int], out: list[int], merge: list[int], actor: str,
                               apart: Optional[list[int]] = None) -> dict[str, Any]:
        """A whole group reviewed at once (confirm, take out, merge; neighbours judged apart: see
        `GroupState.answer_group`)."""
        with self._lock:
            d = self.discovery
            t0 = time.perf_counter()
            d.answer_group(rows, out, merge, actor, apart or [])
            return self._discovery_saved(d, t0)

    def discovery_grid(self, rows: list[int], beside: list[int]) -> bytes:
        """PNG: a group question's images numbered, one image of each neighbouring group lettered."""
        from ..discovery.question_pictures import group_grid

        with self._lock:
            return group_grid(self.discovery, rows, beside)

    def _discovery_saved(self, d: Any, t0: float) -> dict[str, Any]:
        seconds = time.perf_counter() - t0
        d.update_outputs(self.cfg.discovery_dir)
        return {"individuals": int(d.labels.max()) + 1, "answers": len(d.answered()),
                "regroup_seconds": round(seconds, 4)}

    # -- population ---------------------------------------------------------------------------------------------
    def population(self, occasion: str = "1d", by: str = "none", draws: int = 200, method: str = "auto",
                   progress: Any = None) -> dict[str, Any]:
        """Capture histories and abundance of the served discovery (made from a Camtrap DP package), written to
        its `population/` folder; population.json's content."""
        from ..population.report import PopulationRequest, population

        if self.cfg.discovery_dir is None:
            raise GalleryError("this service serves no discovery folder (start it with --discovery DIR)")
        folder = Path(self.cfg.discovery_dir)
        if not (folder / "package" / "datapackage.json").is_file():
            raise DataError("the served discovery was not made from a Camtrap DP package: no sightings to count")
        if progress:
            progress(0.1, "capture histories")
        with self._lock:
            out = population(PopulationRequest(str(folder), str(folder / "population"), occasion, by, draws, method),
                             progress=False)
        if progress:
            progress(1.0, "done")
        return out

    def population_plot(self, name: str) -> bytes:
        """One of the plots of the last population run (discovery_curve or capture_history), as PNG."""
        if self.cfg.discovery_dir is None or name not in ("discovery_curve", "capture_history"):
            raise GalleryError(f"no population plot {name!r}")
        f = Path(self.cfg.discovery_dir) / "population" / f"{name}.png"
        if not f.is_file():
            raise GalleryError("no population estimate yet: POST /population first")
        return f.read_bytes()

    # -- a visitor's private gallery ----------------------------------------------------------------------------
    @property
    def sessions(self) -> Any:
        """Private temporary galleries of browser sessions (created on first use)."""
        with self._lock:
            if self._sessions is None:
                from .sessions import SessionGalleries

                self._sessions = SessionGalleries(self.model)
            return self._sessions

    def session_enroll(self, session: str, img: Image.Image, name: str) -> dict[str, int]:
        """A photo of `name` into the session's own gallery (recalibrated when it can be)."""
        emb = self.embed(img)
        s = self.sessions
        g = s.get(session)
        s.check_room(g)
        with s.lock:
            found = [i for i in g.individuals() if i["display_name"] == name]
            iid = found[0]["id"] if found else g.add_individual(name)
            g.enroll(iid, emb, sources=["session upload"], images=[img])
            try:
                recalibrate_gallery(g)
            except ReidHubError:
                pass  # too few individuals or pairs yet: searches rank by score alone
            return {"individuals": len(g.individuals()), "images": len(g), "max_images": s.max_images}

    def session_identify(self, session: str, img: Image.Image) -> tuple[Any, Optional[Image.Image]]:
        """Identify in the session's own gallery: the identification and the best match's evidence picture."""
        emb = self.embed(img)
        s = self.sessions
        g = s.get(session)
        with s.lock:
            res = identify(g, emb, img, k=5)
            top = res.matches[0] if res.matches else None
            return res, (evidence(g, img, top.image_id) if top and top.matcher else None)

    # -- requests -----------------------------------------------------------------------------------------------
    def read_upload(self, data: bytes, content_type: Optional[str]) -> Image.Image:
        """Check and decode an uploaded image."""
        if len(data) == 0:
            raise ImageError("the upload is empty")
        if len(data) > self.cfg.max_upload_bytes:
            raise TooLargeError(f"upload of {len(data)} bytes exceeds {self.cfg.max_upload_bytes}")
        if content_type and not (content_type.startswith("image/") or content_type == "application/octet-stream"):
            raise ImageError(f"expected an image, got content type {content_type}")
        try:  # the header alone gives the size: refuse bombs before decoding any pixel
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
        except Image.DecompressionBombError as exc:
            raise TooLargeError(f"image refused as a decompression bomb: {exc}") from exc
        except Exception as exc:
            raise ImageError("the upload is not a readable image") from exc
        if width * height > self.cfg.max_pixels:
            raise TooLargeError(f"image of {width}x{height} pixels exceeds {self.cfg.max_pixels}")
        return load_image(data)

    def authorize(self, token: Optional[str]) -> str:
        """The writer's name for the audit trail when `token` is the service's token (or none is set);
        AuthError otherwise. The UI's writes go through this, like the API's."""
        if self.cfg.token is None:
            if self.cfg.public:
                raise AuthError("this public service's shared gallery is read-only (no token is configured); "
                                "visitors can use a private session gallery")
            return "local"
        given = (token or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.cfg.token.encode()):
            raise AuthError("a valid token is required for writes to this gallery")
        return self.cfg.token_name


__all__ = ["ServiceConfig", "ReidService", "RateLimiter", "http_status", "MAX_ID", "MAX_WAIT_S"]
