"""Embed, search and identify an uploaded image, and draw the evidence of a match."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile

from ..service import MAX_ID
from .kit import RouteKit


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["identification"])
    svc, heavy = kit.svc, kit.heavy()

    @r.post("/embed")
    async def embed(file: UploadFile = File(...)) -> dict[str, Any]:
        emb = svc.embed(await kit.image_of(file))
        return {"dim": int(emb.shape[1]), "embedding": emb[0].tolist()}

    @r.post("/search")
    async def search(file: UploadFile = File(...), k: int = Form(5, ge=1, le=100)) -> dict[str, Any]:
        return svc.search(await kit.image_of(file), k=k)

    @r.post("/identify", dependencies=[Depends(heavy)])
    async def identify(file: UploadFile = File(...), k: int = Form(5, ge=1, le=100),
                       species: str = Form(default="", max_length=100),
                       shortlist: Optional[int] = Form(default=None, ge=1, le=1000)) -> dict[str, Any]:
        """Global shortlist -> local-feature verification -> calibrated P(same individual) -> the decision policy:
        accept / new where its held-out precision reaches the gallery's target, else review (`p_new`,
        `decision_precision`, `coverage` at the top level); each verified match links its evidence picture."""
        return svc.identify(await kit.image_of(file), k=k, species=species, shortlist=shortlist)

    @r.post("/identify/evidence.png", dependencies=[Depends(heavy)])
    async def identify_evidence(file: UploadFile = File(...), image_id: int = Query(..., ge=0, le=MAX_ID)):
        """The query (uploaded again) beside gallery image `image_id`, verified matches drawn (PNG)."""
        return Response(content=svc.evidence(await kit.image_of(file), image_id), media_type="image/png")

    return r
