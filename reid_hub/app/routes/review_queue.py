"""The review queue: proposals, their evidence, and a person's decisions."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from ..service import MAX_ID
from .kit import RouteKit


class Decision(BaseModel):
    action: str = Field(pattern="^(confirm|reject|new|undo|take_out)$")
    members: Optional[list[int]] = Field(default=None, max_length=64)
    individual_id: Optional[str] = Field(default=None, max_length=100)
    display_name: Optional[str] = Field(default=None, max_length=200)
    force: bool = False
    expected_version: Optional[int] = Field(default=None, ge=0)


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["review"])
    svc, token, heavy = kit.svc, kit.require_token(), kit.heavy()

    @r.post("/review/propose", status_code=201, dependencies=[Depends(heavy)])
    async def review_propose(actor: str = Depends(token), file: UploadFile = File(...),
                             species: str = Form(default="", max_length=100)) -> dict[str, Any]:
        """Identify an image and queue the decision for review (with auto-accept on, accepted or minted new
        where the decision policy's held-out precision reaches the gallery's target)."""
        img = await kit.image_of(file)
        return svc.propose(img, species, file.filename or "upload", actor)

    @r.get("/review")
    def review_list(offset: int = Query(0, ge=0, le=MAX_ID), limit: int = Query(20, ge=1, le=200),
                    status: str = Query("pending", pattern="^(pending|confirmed|new|auto-accepted)$")) -> dict[str, Any]:
        """Proposals with this status, oldest first, paginated."""
        return {**svc.review_list(offset, limit, status), "offset": offset, "limit": limit}

    @r.get("/review/{proposal_id}")
    def review_show(proposal_id: int = PathParam(ge=0, le=MAX_ID)) -> dict[str, Any]:
        return svc.review_item(proposal_id)

    @r.post("/review/{proposal_id}")
    def review_decide(body: Decision, proposal_id: int = PathParam(ge=0, le=MAX_ID),
                      actor: str = Depends(token)) -> dict[str, Any]:
        """confirm / reject / new / undo / take_out (`members`: positions of the images that are not the animal);
        a retried decision returns the recorded one, a different decision on a decided proposal (or a stale
        expected_version) is a 409."""
        return svc.decide(proposal_id, body.action, actor, individual_id=body.individual_id,
                          display_name=body.display_name, force=body.force, expected_version=body.expected_version,
                          members=body.members)

    @r.get("/review/{proposal_id}/evidence.png")
    def review_evidence(proposal_id: int = PathParam(ge=0, le=MAX_ID),
                        individual_id: Optional[str] = Query(default=None)):
        """The proposal's query beside its current (or the named) candidate's best image, matches drawn."""
        return Response(content=svc.review_evidence(proposal_id, individual_id), media_type="image/png")

    return r
