"""The served discovery: its summary, the next pair questions, their pictures and a person's answers."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from .kit import RouteKit


class PairAnswer(BaseModel):
    a: int = Field(ge=0, le=10_000_000)
    b: int = Field(ge=0, le=10_000_000)
    answer: str = Field(pattern="^(same|different|skip|undo)$")


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["discovery"])
    svc, token, heavy = kit.svc, kit.require_token(), kit.heavy()

    @r.get("/discovery")
    def discovery_summary() -> dict[str, Any]:
        return svc.discovery_summary()

    @r.get("/discovery/questions")
    def discovery_questions(limit: int = Query(20, ge=1, le=200)) -> dict[str, Any]:
        return svc.discovery_questions(limit)

    @r.get("/discovery/evidence.png", dependencies=[Depends(heavy)])
    def discovery_evidence(a: int = Query(..., ge=0, le=10_000_000), b: int = Query(..., ge=0, le=10_000_000)):
        return Response(svc.discovery_evidence(a, b), media_type="image/png")

    @r.post("/discovery/answers")
    def discovery_answer(body: PairAnswer, actor: str = Depends(token)) -> dict[str, Any]:
        return svc.discovery_answer(body.a, body.b, body.answer, actor)

    return r
