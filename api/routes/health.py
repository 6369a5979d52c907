"""``/health``: is the database reachable, which PostGIS, which schema revision."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from geo.migrate import health as schema_health

router = APIRouter(tags=["service"])


@router.get("/health", summary="Service health: database, PostGIS, schema revision")
def health(request: Request) -> JSONResponse:
    report = schema_health(request.app.state.engine)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
