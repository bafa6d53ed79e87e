"""Long work runs as jobs: their state, progress and result."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam

from ...errors import GalleryError
from .kit import RouteKit


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["jobs"])
    svc = kit.svc

    @r.get("/jobs/{job_id}")
    def job(job_id: str = PathParam(min_length=1, max_length=64, pattern="^[0-9a-f]+$")) -> dict[str, Any]:
        """A job's state (queued, running, done, failed, interrupted), progress, and its result or error."""
        got = svc.jobs.get(job_id)
        if got is None:
            raise GalleryError(f"no job {job_id}")
        return got

    @r.get("/jobs")
    def jobs(limit: int = Query(default=50, ge=1, le=500)) -> list[dict[str, Any]]:
        """The newest jobs (without their results)."""
        return svc.jobs.recent(limit)

    return r
