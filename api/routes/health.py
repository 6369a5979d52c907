"""``/health``: is the database reachable, which PostGIS, which schema revision."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from geo.migrate import health as schema_health

router = APIRouter(tags=["service"])


@router.get("/health", summary="Service health: database, PostGIS, schema revision")
def health(request: Request) -> JSONResponse:
    report = schema_health(request.app.state.engine)
    router = request.app.state.read_router  # where reads go: the replica, or why not
    report["replica"] = router.health.report() if router is not None else {"configured": False}
    # other processes' changes heard (LISTEN/NOTIFY): not a failure when down, as every cache
    # still checks the database, but a process that keeps reconnecting is worth a look
    listener = request.app.state.change_listener
    report["listener"] = listener.state() if listener is not None else {"running": False}
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)
