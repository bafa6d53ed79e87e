"""Individuals and their images, thumbnails, the gallery's calibration and its Camtrap DP export."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ..service import MAX_ID
from .kit import WAIT, RouteKit


class NewIndividual(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)
    species: str = Field(default="", max_length=100)
    notes: str = Field(default="", max_length=2000)


class Rename(BaseModel):
    display_name: str = Field(min_length=1, max_length=200)


class Merge(BaseModel):
    absorb: str = Field(min_length=1)


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["individuals"])
    svc, token = kit.svc, kit.require_token()

    @r.get("/health")
    def health() -> dict[str, Any]:
        return svc.health()

    @r.get("/model")
    def model_info() -> dict[str, Any]:
        return svc.model_info()

    @r.get("/individuals")
    def individuals() -> list[dict[str, Any]]:
        return svc.individuals()

    @r.post("/individuals", status_code=201, dependencies=[Depends(token)])
    def add_individual(body: NewIndividual) -> dict[str, str]:
        return {"individual_id": svc.add_individual(body.display_name, body.species, body.notes)}

    @r.post("/individuals/{iid}/images", status_code=201, dependencies=[Depends(token)])
    async def enroll(iid: str, file: UploadFile = File(...)) -> dict[str, Any]:
        img = await kit.image_of(file)
        return {"individual_id": iid, "image_id": svc.enroll(iid, img, source=file.filename or "upload")}

    @r.patch("/individuals/{iid}", dependencies=[Depends(token)])
    def rename(iid: str, body: Rename) -> dict[str, str]:
        svc.rename(iid, body.display_name)
        return {"individual_id": iid, "display_name": body.display_name}

    @r.post("/individuals/{iid}/merge")
    def merge(iid: str, body: Merge, actor: str = Depends(token)) -> dict[str, str]:
        svc.merge(iid, body.absorb, actor)
        return {"individual_id": iid, "absorbed": body.absorb}

    @r.get("/images/{image_id}/thumbnail")
    def thumbnail(image_id: int = PathParam(ge=0, le=MAX_ID)):
        return FileResponse(svc.thumbnail_path(image_id), media_type="image/jpeg")

    @r.post("/calibrate", dependencies=[Depends(token)])
    def calibrate() -> dict[str, Any]:
        return svc.calibrate()

    @r.post("/recalibrate", dependencies=[Depends(token)])
    def recalibrate(kind: str = Form(default="isotonic", pattern="^(isotonic|logistic)$"),
                    wait: Optional[float] = WAIT) -> Any:
        """Refit P(same individual) and the decision policy per species on the gallery's own individuals (a job)."""
        return kit.as_job("recalibrate", lambda progress: svc.recalibrate(kind, progress), wait)

    @r.get("/export/camtrap-dp", dependencies=[Depends(token)])
    def export_camtrap():
        """The gallery's sightings and images as a Camtrap DP data package (zip) with individualID filled."""
        with tempfile.TemporaryDirectory() as tmp:
            data = svc.export_camtrap(Path(tmp) / "camtrap-dp.zip").read_bytes()
        return Response(content=data, media_type="application/zip",
                        headers={"Content-Disposition": "attachment; filename=camtrap-dp.zip"})

    return r
