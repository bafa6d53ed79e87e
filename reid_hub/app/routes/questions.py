"""The served discovery: its summary, the next pair and group questions, their pictures and a person's answers."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, model_validator

from ...errors import ConfigError

from .kit import RouteKit


class PairAnswer(BaseModel):
    a: int = Field(ge=0, le=10_000_000)
    b: int = Field(ge=0, le=10_000_000)
    answer: str = Field(pattern="^(same|different|skip|undo)$")


class GroupAnswer(BaseModel):
    """A whole group reviewed at once: `rows` shown, `out` of them not the animal, `merge`: an image of each
    neighbouring group that is the animal, `apart`: an image of each neighbouring group shown that is not. `action`
    names what was done (confirm: nothing taken out or merged)."""

    action: str = Field(pattern="^(confirm|take_out|merge)$")
    rows: list[int] = Field(min_length=1, max_length=12)
    out: list[int] = Field(default_factory=list, max_length=12)
    merge: list[int] = Field(default_factory=list, max_length=8)
    apart: list[int] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _consistent(self) -> "GroupAnswer":
        if any(not 0 <= r <= 10_000_000 for r in self.rows + self.out + self.merge + self.apart):
            raise ValueError("rows are numbers from 0")
        if (self.action == "take_out") != bool(self.out) or (self.action == "merge") != bool(self.merge):
            raise ValueError("take_out names the rows taken out (out), merge the rows merged with (merge), "
                             "confirm neither")
        return self


def _rows(text: str, name: str) -> list[int]:
    try:
        rows = [int(t) for t in text.split(",") if t.strip()] if text else []
    except ValueError:
        raise ConfigError(f"{name}: comma-separated row numbers, got {text[:40]!r}") from None
    if len(rows) > 24 or any(r < 0 for r in rows):
        raise ConfigError(f"{name}: at most 24 row numbers, each 0 or more")
    return rows


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

    @r.get("/discovery/groups")
    def discovery_groups(limit: int = Query(5, ge=1, le=50)) -> dict[str, Any]:
        return svc.discovery_group_questions(limit)

    @r.get("/discovery/grid.png", dependencies=[Depends(heavy)])
    def discovery_grid(rows: str = Query(..., max_length=400), beside: str = Query("", max_length=400)):
        return Response(svc.discovery_grid(_rows(rows, "rows"), _rows(beside, "beside")), media_type="image/png")

    @r.post("/discovery/groups/answers")
    def discovery_group_answer(body: GroupAnswer, actor: str = Depends(token)) -> dict[str, Any]:
        return svc.discovery_group_answer(body.rows, body.out, body.merge, actor, body.apart)

    return r
