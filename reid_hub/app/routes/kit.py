"""What every router shares: the service, the token and rate-limit dependencies, upload reading and jobs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from fastapi import Header, HTTPException, Query, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from ...errors import AuthError
from ..jobs import DONE, FAILED
from ..service import MAX_WAIT_S, ReidService, http_status


@dataclass
class RouteKit:
    """The service behind the routes and the dependencies they use."""

    svc: ReidService

    def require_token(self) -> Callable[..., str]:
        """A dependency: the writer's name for the audit trail, or 401."""
        def dep(authorization: Optional[str] = Header(default=None)) -> str:
            try:
                return self.svc.authorize(authorization)
            except AuthError:
                raise HTTPException(status_code=401, detail="a valid bearer token is required for writes") from None
        return dep

    def heavy(self) -> Callable[[Request], None]:
        """A dependency: the per-client rate limit of the expensive endpoints."""
        def dep(request: Request) -> None:
            self.svc.limiter.check(request.client.host if request.client else "unknown")
        return dep

    async def image_of(self, file: UploadFile) -> Image.Image:
        """An uploaded image, checked (size, type, pixels) and decoded."""
        data = await file.read(self.svc.cfg.max_upload_bytes + 1)
        return self.svc.read_upload(data, file.content_type)

    def as_job(self, kind: str, fn: Any, wait: Optional[float]) -> Any:
        """Run `fn(progress)` as a job; its result when it ends within the wait, else 202 and the job to poll."""
        svc = self.svc
        job_id = svc.jobs.submit(kind, fn)
        job = svc.jobs.wait(job_id, svc.cfg.sync_wait_s if wait is None else wait)
        if job["state"] == DONE:
            return job["result"]
        if job["state"] == FAILED:
            return JSONResponse(status_code=http_status(job["error"]["error"]), content=job["error"])
        return JSONResponse(status_code=202, headers={"Location": f"/jobs/{job_id}"},
                            content={**{k: job[k] for k in ("job_id", "kind", "state", "progress", "message")},
                                     "poll": f"/jobs/{job_id}"})


#: the `wait` query parameter of job endpoints
WAIT = Query(default=None, ge=0, le=MAX_WAIT_S, description="seconds to wait for the job before answering 202 with "
             "its id (default: the server's sync_wait_s)")

__all__ = ["RouteKit", "WAIT"]
