"""The REST API of the retrieval service (FastAPI): the application, its error handling and schema, and the routers
of app.routes over the ReidService facade; the Gradio UI (app.ui) mounts on it.

Every expected failure is answered with a 4xx and a JSON body {"error": type, "detail": text}; long work runs as
jobs (202 + /jobs/{id}).
"""

import logging
from typing import Any

from ..errors import ReidHubError
from .routes import clip_uploads, individuals, job_status, matching, population_jobs, questions, review_queue
from .routes.kit import RouteKit
from .service import ReidService, ServiceConfig, http_status

log = logging.getLogger(__name__)


def create_api(cfg: ServiceConfig, model: Any = None):
    """The FastAPI application (OpenAPI at /docs and /openapi.json)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    from .. import __version__

    svc = ReidService(cfg, model)
    app = FastAPI(title="reid-hub", version=__version__,
                  description="Animal re-identification: embed images and search a gallery of known individuals.")
    app.state.service = svc

    @app.exception_handler(ReidHubError)
    async def _reid_error(request: Request, exc: ReidHubError):
        return JSONResponse(status_code=http_status(type(exc).__name__),
                            content={"error": type(exc).__name__, "detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"error": "ValidationError",
                                                      "detail": [str(e.get("msg")) for e in exc.errors()]})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return JSONResponse(status_code=500, content={"error": "InternalError", "detail": type(exc).__name__})

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return JSONResponse(status_code=exc.status_code, content={"error": "HTTPError", "detail": exc.detail})

    kit = RouteKit(svc)
    for module in (individuals, matching, review_queue, clip_uploads, questions, population_jobs, job_status):
        app.include_router(module.router(kit))

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """The schema with the 422 body this service really sends, not FastAPI's default: every error is
        {"error": its public name (ValidationError, DataError, ...), "detail": a message or a list of them}."""
        if app.openapi_schema is None:
            schema = default_openapi()
            comps = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in comps:
                comps["HTTPValidationError"] = {
                    "title": "HTTPValidationError", "type": "object", "required": ["error", "detail"],
                    "properties": {"error": {"type": "string"},
                                   "detail": {"anyOf": [{"type": "string"},
                                                        {"type": "array", "items": {"type": "string"}}]}}}
                comps.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


__all__ = ["create_api"]
