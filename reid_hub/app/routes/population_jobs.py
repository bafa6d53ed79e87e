"""Abundance of the served discovery: a population job (capture histories, estimates with and without the
identification's uncertainty) and its plots."""
from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from .kit import WAIT, RouteKit


class PopulationAsk(BaseModel):
    occasion: str = Field(default="1d", pattern=r"^\d{1,4}[mhdw]$")
    by: str = Field(default="none", pattern="^(none|deployment)$")
    draws: int = Field(default=200, ge=1, le=2000)
    method: str = Field(default="auto", pattern="^(auto|chao_mh|schnabel|chapman|naive)$")


def router(kit: RouteKit) -> APIRouter:
    r = APIRouter(tags=["population"])
    svc, token = kit.svc, kit.require_token()

    @r.post("/population", dependencies=[Depends(token)])
    def population(body: PopulationAsk, wait: Optional[float] = WAIT) -> Any:
        """A job: population.json of the served discovery (202 and the job to poll when it takes longer)."""
        return kit.as_job("population", lambda progress: svc.population(body.occasion, body.by, body.draws,
                                                                         body.method, progress), wait)

    @r.get("/population/{name}.png")
    def population_plot(name: str = PathParam(pattern="^(discovery_curve|capture_history)$")):
        return Response(svc.population_plot(name), media_type="image/png")

    return r
