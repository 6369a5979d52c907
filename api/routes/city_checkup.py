"""城市体检 over HTTP: run the check-up, read a run, one indicator's areas, compare two runs, the
report page and the exports. Planners and administrators run and read it (the results are
aggregates: no person is in them, but grid-level figures are internal working material)."""

from __future__ import annotations

import io
import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated

import orjson
import pandas as pd
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text

from api.checkup_report import area_collection, render_report
from api.deps import read_engine, require_role
from api.html import CSP, wants_html
from geo.checkup.compare import compare
from geo.checkup.engine import CheckupConfig, run_checkup, summarise
from geo.checkup.registry import indicators
from geo.checkup.results import (
    LEVEL_ORDER,
    indicator_results,
    latest_run,
    list_runs,
    results_frame,
)
from geo.errors import BadRequest, Forbidden, NotFound
from geo.policy.district_scope import narrowed
from geo.policy.roles import Viewer

router = APIRouter(tags=["city check-up 城市体检"])
READERS = require_role("planner", "admin")
Level = Annotated[str | None, Query(description=f"one of {', '.join(LEVEL_ORDER)} (default: all)")]


class RunRequest(BaseModel):
    """What to run: all optional."""

    model_config = {"extra": "forbid"}
    as_of: date | None = Field(
        None, description="the day the data stands for (default: its last event)"
    )
    area: str | None = Field(None, max_length=32, description="a street, community or grid code")
    district: str | None = Field(
        None, max_length=32, description="run for this district only (6 digits; default: all)"
    )
    label: str | None = Field(None, max_length=200, description="e.g. 2026年度体检")


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _config(request: Request) -> CheckupConfig:
    return CheckupConfig.load(request.app.state.settings.spatial.checkup_config)


def _check_level(level: str | None) -> None:
    if level is not None and level not in LEVEL_ORDER:
        raise BadRequest(f"level {level!r} is not one of {', '.join(LEVEL_ORDER)}")


@router.get("/checkup/indicators", summary="Every indicator: definition, target, standard")
def list_indicators(request: Request, who: Viewer = Depends(READERS)):
    config = _config(request)
    return _json([item.describe(config.target(item)) for item in indicators().values()])


@router.post("/checkup/runs", status_code=201, summary="Run the check-up (one click)")
async def start_run(
    request: Request,
    body: Annotated[RunRequest | None, Body()] = None,
    who: Viewer = Depends(READERS),
):
    body = body or RunRequest()
    settings = request.app.state.settings
    with read_engine(request).connect() as conn:
        area = _run_area(conn, who, body)
    result = await run_in_threadpool(
        run_checkup,
        request.app.state.engine,
        settings.spatial.metric_srid,
        body.as_of,
        area,
        _config(request),
        body.label,
        who.username,
    )
    return _json(result.summary | {"timings": result.timings}, 201)


def _run_area(conn, who: Viewer, body: RunRequest) -> str | None:
    """The area a run covers: the one asked for, inside the district asked for; a caller bound
    to a district runs it for their district (another district's area is a 403)."""
    who = narrowed(conn, who, body.district)
    area = body.area or (who.district + "000000" if who.district else None)
    if area is not None and who.district is not None and area[:6] != who.district:
        if body.district is not None:
            raise BadRequest(f"area {area} is not in district {who.district}")
        raise Forbidden(f"you work in district {who.district}: area {area} is not in it")
    return area


def _runs_seen(conn, who: Viewer) -> set[int] | None:
    """The runs a district-bound caller may read: those for their district or an area in it
    (a whole-city run holds other districts' figures); None: every run."""
    if who.district is None:
        return None
    rows = conn.execute(
        text("""SELECT id FROM checkup_runs
                WHERE left(coalesce(area_code, district_code), 6) = :d"""),
        {"d": who.district},
    )
    return {r[0] for r in rows}


def _readable(conn, who: Viewer, *runs: int) -> None:
    """Another district's run is, for a district-bound caller, as missing as one never run."""
    seen = _runs_seen(conn, who)
    for run in runs:
        if seen is not None and run not in seen:
            raise NotFound(f"no check-up run {run}")


@router.get("/checkup/runs", summary="The runs kept, newest first")
def runs(
    request: Request,
    who: Viewer = Depends(READERS),
    district: Annotated[str | None, Query(description="only this district's runs")] = None,
):
    with read_engine(request).connect() as conn:
        who = narrowed(conn, who, district)
        seen = _runs_seen(conn, who)
        listed = list_runs(conn)
    return _json([r for r in listed if seen is None or r["run"] in seen])


@router.get("/checkup/runs/{run}", summary="A run: passed and failed per dimension")
def show_run(request: Request, run: int, who: Viewer = Depends(READERS), f: str | None = None):
    if wants_html(request, f):
        return report_page(request, run, who)
    with read_engine(request).connect() as conn:
        _readable(conn, who, run)
        return _json(summarise(conn, run))


@router.get(
    "/checkup/runs/{run}/indicators/{indicator}",
    summary="One indicator's value for every area of a run, with pass or fail",
)
def show_indicator(
    request: Request, run: int, indicator: str, level: Level = None, who: Viewer = Depends(READERS)
):
    _check_level(level)
    with read_engine(request).connect() as conn:
        _readable(conn, who, run)
        return _json(indicator_results(conn, run, indicator, level))


@router.get(
    "/checkup/runs/{run}/indicators/{indicator}/areas.geojson",
    summary="One indicator's areas with their shapes (the viewer's check-up overlay)",
)
def indicator_areas(
    request: Request,
    run: str,
    indicator: str,
    level: Annotated[str, Query(description="street, community, grid, h3_8 or h3_9")] = "community",
    district: Annotated[str | None, Query(description="only this district's areas")] = None,
    who: Viewer = Depends(READERS),
):
    _check_level(level)
    with read_engine(request).connect() as conn:
        seen = _runs_seen(conn, who)
        if run == "latest" and seen is not None:
            number = max(seen, default=0)  # the caller's district's newest
        else:
            number = latest_run(conn) if run == "latest" else _run_number(run)
        _readable(conn, who, number)
        body = area_collection(conn, number, indicator, level)
        inside = narrowed(conn, who, district).district
    if inside is not None and not level.startswith("h3"):  # the viewer's 区 picker
        body["features"] = [f for f in body["features"] if f["properties"]["code"][:6] == inside]
    return Response(orjson.dumps(body), media_type="application/geo+json")


def _run_number(run: str) -> int:
    if not run.isdigit():
        raise BadRequest(f"run {run!r}: give a run number or latest")
    return int(run)


@router.get("/checkup/compare", summary="Year on year: two runs side by side")
def compare_runs(
    request: Request,
    base: Annotated[int, Query(description="the earlier run")],
    run: Annotated[int, Query(description="the later run")],
    level: Annotated[str, Query(description="district, street, community or grid")] = "district",
    indicator: str | None = None,
    who: Viewer = Depends(READERS),
):
    _check_level(level)
    with read_engine(request).connect() as conn:
        _readable(conn, who, base, run)
        return _json(compare(conn, base, run, level, indicator))


@router.get("/checkup/runs/{run}/report", summary="The run's report page (HTML)")
def report_page(
    request: Request,
    run: int,
    who: Viewer = Depends(READERS),
    base: Annotated[int | None, Query(description="an earlier run to set beside it")] = None,
):
    with read_engine(request).connect() as conn:
        _readable(conn, who, run, *([base] if base is not None else []))
        page = render_report(conn, run, base, served=True)
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP})


@router.get("/checkup/runs/{run}/export", summary="A run's results as CSV or GeoPackage")
def export_run(
    request: Request,
    run: int,
    f: Annotated[str, Query(description="csv or gpkg")] = "csv",
    level: Level = None,
    who: Viewer = Depends(READERS),
):
    _check_level(level)
    if f not in ("csv", "gpkg"):
        raise BadRequest(f"f={f!r}: ask for csv or gpkg")
    with read_engine(request).connect() as conn:
        _readable(conn, who, run)
        frame = results_frame(conn, run, level)
    name = f"checkup-run-{run}.{f}"
    if f == "csv":
        buffer = io.StringIO()
        pd.DataFrame(frame).assign(geometry=frame.geometry.to_wkt()).to_csv(buffer, index=False)
        content, kind = ("\ufeff" + buffer.getvalue()).encode("utf-8"), "text/csv; charset=utf-8"
    else:
        with tempfile.TemporaryDirectory(prefix="onemap-checkup-") as folder:
            path = Path(folder) / name
            frame.to_file(path, layer=f"checkup_run_{run}", driver="GPKG")
            content, kind = path.read_bytes(), "application/geopackage+sqlite3"
    return Response(
        content, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
