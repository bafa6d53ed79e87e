"""The service facade: one model, one gallery, the lock every write takes, the upload limits, the token and the
rate limits, shared by the REST API (app.api) and the UI (app.ui).

Every expected failure is answered with a 4xx and a JSON body {"error": type, "detail": text};
uploads are checked for size, content type, pixel count and decodability before use.
"""

import hmac
import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PIL import Image

from .. import errors
from ..data.imaging import MAX_IMAGE_PIXELS, load_image
from ..errors import (AuthError, ConfigError, ConflictError, DataError, ImageError, ModelMismatchError, OfflineError,
                      RateLimitedError, ReidHubError, TooLargeError, UnknownModelError)
from ..gallery import Gallery, GalleryError, open_gallery
from ..gallery.identification import evidence, identify
from ..models.loading import DEFAULT_MODEL, from_pretrained
from .clips import ClipLimits
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
    """The model and gallery behind the API and the UI, with a lock around gallery writes."""

    def __init__(self, cfg: ServiceConfig, model: Any = None) -> None:
        self.cfg = cfg.validate()
        self.model = model if model is not None else from_pretrained(cfg.model)
        self.gallery: Gallery = open_gallery(cfg.gallery_dir, self.model)
        self.lock = threading.RLock()
        #: one clip flow (app.clips) for the API and the UI, with the same limits
        self.clip_limits = ClipLimits(max_bytes=cfg.max_video_bytes)
        self.limiter = RateLimiter(cfg.heavy_per_minute)
        self.jobs = JobStore(Path(cfg.gallery_dir) / "jobs.sqlite")
        self._sessions: Any = None
        self._discovery: Any = None

    @property
    def discovery(self) -> Any:
        """The served discovery (opened on first use); GalleryError when the service has none."""
        if self.cfg.discovery_dir is None:
            raise GalleryError("this service serves no discovery folder (start it with --discovery DIR)")
        if self._discovery is None:
            from ..discovery.run import open_discovery

            self._discovery = open_discovery(self.cfg.discovery_dir)
        return self._discovery

    def decide(self, proposal_id: int, action: str, actor: str, **kwargs: Any) -> dict[str, Any]:
        """One review decision (see `gallery.review.decide`); when the served discovery sent that proposal, the
        decision reaches its answers at once (and it regroups)."""
        from ..gallery import review

        with self.lock:
            out = review.decide(self.gallery, proposal_id, action, actor=actor, **kwargs)
            if self._discovery is not None and self._feeds_discovery():
                from ..discovery.review_feed import feed_review_decisions

                fed = feed_review_decisions(self._discovery.answers, self.gallery, Path(self.cfg.discovery_dir))
                if fed["recorded"] or fed["withdrawn"]:
                    self._discovery.learn()
                    self._discovery.write(self.cfg.discovery_dir)
            return out

    def _feeds_discovery(self) -> bool:
        """Whether the served discovery sent its individuals to this service's gallery."""
        from ..discovery.run import discovery_gallery

        sent = discovery_gallery(self.cfg.discovery_dir)
        return sent is not None and sent.resolve() == Path(self.cfg.gallery_dir).resolve()

    def discovery_questions(self, limit: int = 20) -> dict[str, Any]:
        """The next pair questions of the served discovery, with what is known of the grouping."""
        with self.lock:
            d = self.discovery
            table = d.question_table(limit)
            return {"individuals": int(d.labels.max()) + 1 if len(d.labels) else 0,
                    "answers": len(d.answered()), "questions": table.to_dict("records")}

    def discovery_answer(self, a: int, b: int, answer: str, actor: str) -> dict[str, Any]:
        """Record an answer (same / different / skip, or undo), regroup, and rewrite the folder's outputs."""
        import time

        with self.lock:
            d = self.discovery
            t0 = time.perf_counter()
            if answer == "undo":
                d.undo(actor)
            else:
                d.answer(a, b, answer, actor)
            seconds = time.perf_counter() - t0
            d.write(self.cfg.discovery_dir)
            return {"individuals": int(d.labels.max()) + 1, "answers": len(d.answered()),
                    "regroup_seconds": round(seconds, 4)}

    @property
    def sessions(self) -> Any:
        """Private temporary galleries of browser sessions (created on first use)."""
        if self._sessions is None:
            from .sessions import SessionGalleries

            self._sessions = SessionGalleries(self.model)
        return self._sessions

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

    def embed(self, img: Image.Image) -> np.ndarray:
        return self.model.embed([img])

    def search(self, img: Image.Image, k: int = 5) -> dict[str, Any]:
        emb = self.embed(img)
        with self.lock:
            res = self.gallery.search(emb, k=k)[0]
        return {"is_new": res.is_new, "threshold": res.threshold,
                "matches": [{"individual_id": m.individual_id, "display_name": m.display_name, "species": m.species,
                             "score": m.score, "images": m.images} for m in res.matches]}

    def enroll(self, iid: str, img: Image.Image, source: str = "upload") -> int:
        emb = self.embed(img)
        with self.lock:
            return self.gallery.enroll(iid, emb, sources=[source], images=[img])[0]

    def identify(self, img: Image.Image, k: int = 5, species: Optional[str] = None,
                 shortlist: Optional[int] = None) -> dict[str, Any]:
        """Coarse-to-fine identification: verified candidates, P(same individual), accept / review / new."""
        emb = self.embed(img)
        with self.lock:
            res = identify(self.gallery, emb, img, species=species or None, k=k, shortlist=shortlist)
        out = res.to_dict()
        for m in out["matches"]:
            m["evidence"] = f"/identify/evidence.png?image_id={m['image_id']}" if m["matcher"] else None
        return out

    def evidence(self, img: Image.Image, image_id: int) -> bytes:
        """PNG: the query beside a gallery image with their verified keypoint matches."""
        from ..scoring.matchers.drawing import png_bytes

        with self.lock:
            return png_bytes(evidence(self.gallery, img, image_id))


__all__ = ["ServiceConfig", "ReidService", "RateLimiter", "http_status", "MAX_ID", "MAX_WAIT_S"]
