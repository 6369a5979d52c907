"""城市安全 over HTTP: hazards and their closed loop, citizens' tips (随手拍) and inspections.

Safety officers and administrators see and move every hazard; planners read them; a grid worker
sees, reports and moves (to rectifying) hazards of their own grids only, and a hazard of another
grid answers 404 as a missing one does. Anyone may send a tip: its coordinates come from a phone
in GCJ-02 and are converted to CGCS2000 here, at the door, before anything else sees them.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.engine import make_url
from starlette.datastructures import UploadFile

from api.deps import Caller, reading_transaction, require_role, writing_transaction
from geo.assets.photos import MAX_PHOTO_BYTES
from geo.crs import CGCS2000, CrsError, is_geographic, parse_crs, transform
from geo.errors import BadRequest, Forbidden, Invalid, NotFound, TooLarge, Unsupported
from geo.models.hazards import HAZARD_CATEGORIES, HAZARD_STATUSES, INSPECTION_SOURCES
from geo.policy.district_scope import district_grids, narrowed
from geo.policy.roles import Viewer
from geo.safety import hazard_loop, inspections

router = APIRouter(tags=["safety 城市安全"])
#: who sees every hazard; a grid worker sees those of their grids
EVERYWHERE = ("safety", "admin", "planner")
READERS = require_role("safety", "admin", "planner", "grid_worker")
REPORTERS = require_role("safety", "admin", "grid_worker")
OFFICE = require_role("safety", "admin", "planner")
#: the moves a grid worker may make: reporting the rectification under way; assigning,
#: verifying and closing are the safety office's (the one who checks is not the one who did it)
GRID_WORKER_MOVES = ("rectifying",)
#: the largest tip or step accepted: one photo and a few fields
MAX_FORM_BYTES = MAX_PHOTO_BYTES + 64 * 1024
MAX_PHOTOS = 5
PHOTO_NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _now(request: Request) -> datetime:
    """Now, or the clock the settings freeze (drills, tests)."""
    return request.app.state.settings.safety.hazard_clock or datetime.now(UTC)


def _days(request: Request) -> dict[int, int]:
    return request.app.state.settings.safety.deadline_days


def _zone(request: Request) -> str:
    return request.app.state.settings.service.timezone


def _within(conn, who: Viewer) -> frozenset[str] | None:
    """The grids the caller may work in: a grid worker's own, within the caller's district
    (a hazard of another district is as missing as one of another grid); None: all of them."""
    grids = who.grids if who.role == "grid_worker" else None
    if who.district is None:
        return grids
    theirs = district_grids(conn, who.district)
    return theirs if grids is None else grids & theirs


def _personal(who: Viewer) -> bool:
    return who.role in ("safety", "admin")


def _folder(request: Request) -> Path:
    """This database's photo folder (shared with asset photos; evidence under ``hazards/``)."""
    database = make_url(request.app.state.engine.url).database or "onemap"
    return request.app.state.settings.service.photos / database


def _bounded(request: Request) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise TooLarge(
            f"内容过大: at most one photo of {MAX_PHOTO_BYTES // 2**20} MB and a few fields"
        )


async def _form(request: Request) -> tuple[dict, list[tuple[bytes, str, str]]]:
    """A multipart form's fields and its photos, checked (size, type by content)."""
    _bounded(request)
    form = await request.form(max_files=MAX_PHOTOS, max_fields=20)
    try:
        fields, photos = {}, []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(MAX_PHOTO_BYTES + 1)
                photos.append(hazard_loop.checked_photo(data, value.filename))
            else:
                fields[key] = value
        return fields, photos
    finally:
        await form.close()


async def _body(request: Request, model: type[BaseModel]):
    """A JSON body or a multipart form, read into ``model``; the photos (form only)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        if kind == "multipart/form-data":
            fields, photos = await _form(request)
            return model.model_validate({k: v for k, v in fields.items() if v != ""}), photos
        if kind in ("application/json", ""):
            _bounded(request)
            return model.model_validate_json(await request.body() or b"{}"), []
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(f"请求有误: {where}: {first['msg']}") from None
    raise Unsupported("send application/json, or multipart/form-data with a photo")


# --- hazards --------------------------------------------------------------------------------


@router.get("/safety/hazards", summary="Hazards as GeoJSON, filtered (overdue=true: past deadline)")
def list_hazards(
    request: Request,
    who: Viewer = Depends(READERS),
    status: Annotated[str | None, Query(description=", ".join(HAZARD_STATUSES))] = None,
    level: Annotated[int | None, Query(ge=1, le=4)] = None,
    category: Annotated[str | None, Query(description=", ".join(HAZARD_CATEGORIES))] = None,
    grid: Annotated[str | None, Query(pattern=r"^[0-9]{15}$")] = None,
    street: Annotated[str | None, Query(pattern=r"^[0-9]{12}$", description="街道 code")] = None,
    department: Annotated[str | None, Query(max_length=50)] = None,
    overdue: Annotated[bool | None, Query(description="true: not closed and past deadline")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
):
    with reading_transaction(request) as conn:
        who = narrowed(conn, who, district)
        body = hazard_loop.find(
            conn,
            _now(request),
            status=status,
            level=level,
            category=category,
            grid=grid,
            street=street,
            department=department,
            overdue=overdue,
            within=_within(conn, who),
            personal=_personal(who),
            limit=limit,
            offset=offset,
        )
    return Response(orjson.dumps(body), media_type="application/geo+json")


class HazardReport(BaseModel):
    model_config = {"extra": "forbid"}
    category: str = Field(..., description=", ".join(HAZARD_CATEGORIES), max_length=16)
    level: int = Field(..., ge=1, le=4, description="1 (most severe) to 4")
    description: str = Field(..., min_length=1, max_length=2000)
    lon: float = Field(..., ge=-180, le=180, description="CGCS2000 longitude")
    lat: float = Field(..., ge=-90, le=90, description="CGCS2000 latitude")
    department: str | None = Field(None, max_length=50, description="责任部门")
    organisation_id: int | None = Field(None, description="the key unit, if any")
    note: str | None = Field(None, max_length=2000)
    found_at: datetime | None = Field(None, description="when found (default: now)")


@router.post("/safety/hazards", status_code=201, summary="Report a hazard (safety, grid workers)")
def report_hazard(
    request: Request, body: Annotated[HazardReport, Body()], who: Viewer = Depends(REPORTERS)
):
    with writing_transaction(request) as conn:
        made = hazard_loop.report(
            conn,
            category=body.category,
            level=body.level,
            description=body.description,
            lon=body.lon,
            lat=body.lat,
            by=who.username,
            source="report",
            department=body.department,
            organisation_id=body.organisation_id,
            note=body.note,
            when=body.found_at,
            deadline_days=_days(request),
            within=_within(conn, who),
        )
        feature = hazard_loop.get(conn, made["id"], _now(request), personal=_personal(who))
    return _json(feature, 201)


@router.get("/safety/hazards/summary", summary="A day's hazards per street and per department")
def hazard_summary(
    request: Request,
    who: Viewer = Depends(OFFICE),
    day: Annotated[date | None, Query(description="YYYY-MM-DD (default: today)")] = None,
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
):
    """A district-bound caller's figures are their district's; ``?district=`` narrows a
    whole-city caller's (another district than one's own is a 403, as on the lists)."""
    day = day or _now(request).astimezone(ZoneInfo(_zone(request))).date()
    with reading_transaction(request) as conn:
        who = narrowed(conn, who, district)
        return _json(hazard_loop.daily_summary(conn, day, _zone(request), who.district))


@router.get("/safety/hazards/{hazard_id}", summary="One hazard with every step of its loop")
def one_hazard(request: Request, hazard_id: int, who: Viewer = Depends(READERS)):
    with reading_transaction(request) as conn:
        feature = hazard_loop.get(
            conn, hazard_id, _now(request), _within(conn, who), personal=_personal(who)
        )
    return Response(orjson.dumps(feature), media_type="application/geo+json")


class StepMove(BaseModel):
    model_config = {"extra": "forbid"}
    status: str = Field(..., description=", ".join(HAZARD_STATUSES), max_length=16)
    note: str | None = Field(None, max_length=2000)
    version: int | None = Field(None, description="the hazard's version as read")
    evidence: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=10, description="written evidence (photos: multipart)"
    )
    level: int | None = Field(None, ge=1, le=4, description="on assigning: the graded level")
    department: str | None = Field(None, max_length=50, description="on assigning: 责任部门")


@router.post(
    "/safety/hazards/{hazard_id}/steps",
    summary="Move a hazard along its loop: JSON, or multipart/form-data with photo evidence",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": StepMove.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["status"],
                        "properties": {
                            "status": {"type": "string"},
                            "note": {"type": "string"},
                            "version": {"type": "integer"},
                            "photo": {"type": "string", "format": "binary"},
                        },
                    }
                },
            }
        }
    },
)
async def hazard_step(request: Request, hazard_id: int, who: Viewer = Depends(REPORTERS)):
    # the caller is checked before the body is read
    body, photos = await _body(request, StepMove)
    if who.role == "grid_worker" and body.status not in GRID_WORKER_MOVES:
        raise Forbidden(
            f"网格员只能上报整改进展: a grid worker may move a hazard to "
            f"{', '.join(GRID_WORKER_MOVES)} only; the safety office assigns, verifies and closes"
        )
    return await run_in_threadpool(_move, request, hazard_id, body, photos, who)


def _move(request: Request, hazard_id: int, body: StepMove, photos, who: Viewer) -> Response:
    with writing_transaction(request) as conn:
        hazard_loop.move(
            conn,
            hazard_id,
            body.status,
            who.username,
            body.note,
            [{"type": "note", "text": t} for t in body.evidence],
            body.version,
            photos=photos,
            folder=_folder(request),
            level=body.level,
            department=body.department,
            deadline_days=_days(request),
            within=_within(conn, who),
        )
        feature = hazard_loop.get(conn, hazard_id, _now(request), personal=_personal(who))
    return Response(orjson.dumps(feature), media_type="application/geo+json")


@router.get(
    "/safety/hazards/{hazard_id}/photos/{name}",
    summary="One evidence photo of a hazard",
    response_class=FileResponse,
)
def hazard_photo(request: Request, hazard_id: int, name: str, who: Viewer = Depends(READERS)):
    if not PHOTO_NAME.fullmatch(name):
        raise NotFound(f"hazard {hazard_id} has no photo {name[:80]}")
    with reading_transaction(request) as conn:
        hazard_loop.get(conn, hazard_id, _now(request), _within(conn, who))
        path, media_type = hazard_loop.evidence_photo(conn, _folder(request), hazard_id, name)
    return FileResponse(
        path,
        media_type=media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"},
    )


# --- citizens' tips -------------------------------------------------------------------------


class Tip(BaseModel):
    model_config = {"extra": "forbid"}
    lon: float = Field(..., ge=-180, le=180, description="longitude as the phone gives it")
    lat: float = Field(..., ge=-90, le=90, description="latitude as the phone gives it")
    crs: str = Field("GCJ-02", max_length=60, description="GCJ-02 (default), BD-09, CRS84, 4490")
    category: str = Field(..., description=", ".join(HAZARD_CATEGORIES), max_length=16)
    description: str = Field(..., min_length=1, max_length=2000)


def tip_to_cgcs2000(lon: float, lat: float, crs: str) -> tuple[float, float]:
    """A phone's position converted to the stored system; only lon/lat systems are taken."""
    try:
        ref = parse_crs(crs)
        if not is_geographic(ref):
            raise CrsError(f"{crs!r} is projected: send longitude and latitude")
    except CrsError as exc:
        raise BadRequest(f"坐标系不支持: {exc}") from None
    x, y = transform(lon, lat, ref, CGCS2000)
    return float(x), float(y)


@router.post(
    "/safety/tips",
    status_code=201,
    summary="随手拍: a citizen's hazard tip (anyone; GCJ-02 by default; JSON, or multipart "
    "with a photo)",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": Tip.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["lon", "lat", "category", "description"],
                        "properties": {
                            "lon": {"type": "number"},
                            "lat": {"type": "number"},
                            "crs": {"type": "string", "default": "GCJ-02"},
                            "category": {"type": "string"},
                            "description": {"type": "string"},
                            "photo": {"type": "string", "format": "binary"},
                        },
                    }
                },
            }
        }
    },
)
async def citizen_tip(request: Request, who: Caller):
    body, photos = await _body(request, Tip)
    if len(photos) > 1:
        raise BadRequest("one photo per tip")
    lon, lat = tip_to_cgcs2000(body.lon, body.lat, body.crs)
    return await run_in_threadpool(_keep_tip, request, body, lon, lat, photos, who)


def _keep_tip(request: Request, body: Tip, lon: float, lat: float, photos, who: Viewer):
    with writing_transaction(request) as conn:
        made = hazard_loop.report(
            conn,
            category=body.category,
            level=4,  # graded when the office assigns it
            description=body.description,
            lon=lon,
            lat=lat,
            by="公众" if who.anonymous else who.username,
            source="tip",
            note="随手拍",
            deadline_days=_days(request),
            photos=photos,
            folder=_folder(request),
        )
    return _json(
        {
            "id": made["id"],
            "code": made["code"],
            "status": "reported",
            "status_zh": hazard_loop.STATUS_ZH["reported"],
            "grid_code": made["grid_code"],
            "lon": lon,
            "lat": lat,
            "crs": "EPSG:4490",
            "received": {"lon": body.lon, "lat": body.lat, "crs": body.crs},
            "message": "感谢您的举报, 我们将尽快核实处理。Thank you: the report will be checked.",
        },
        201,
    )


# --- inspections ----------------------------------------------------------------------------


class Finding(BaseModel):
    model_config = {"extra": "forbid"}
    category: str = Field(..., max_length=16)
    level: int = Field(..., ge=1, le=4)
    description: str = Field(..., min_length=1, max_length=2000)
    department: str | None = Field(None, max_length=50)
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)


class InspectionIn(BaseModel):
    model_config = {"extra": "forbid"}
    source: str = Field(..., max_length=16, description=", ".join(INSPECTION_SOURCES))
    inspector: str = Field(..., min_length=1, max_length=50)
    inspected_at: datetime | None = None
    points: list[tuple[float, float]] = Field(
        ..., min_length=1, max_length=5000, description="[lon, lat] CGCS2000: a point or a route"
    )
    result: str | None = Field(None, max_length=16, description="passed, hazard_found, rectified")
    notes: str | None = Field(None, max_length=4000)
    organisation_id: int | None = None
    found: list[Finding] = Field(default_factory=list, max_length=50)
    rechecked: list[int] = Field(default_factory=list, max_length=200)


@router.post("/safety/inspections", status_code=201, summary="Record an inspection")
def record_inspection(
    request: Request, body: Annotated[InspectionIn, Body()], who: Viewer = Depends(REPORTERS)
):
    if who.role == "grid_worker" and body.source != "grid_patrol":
        raise Forbidden("网格员只能记录网格巡查: a grid worker records grid patrols only")
    found = [f.model_dump(exclude_none=True) for f in body.found]
    with writing_transaction(request) as conn:
        made = inspections.record(
            conn,
            source=body.source,
            inspector=body.inspector,
            points=body.points,
            by=who.username,
            when=body.inspected_at,
            result=body.result,
            notes=body.notes,
            organisation_id=body.organisation_id,
            found=found,
            rechecked=body.rechecked,
            deadline_days=_days(request),
            within=_within(conn, who),
        )
    return _json(made, 201)


@router.get(
    "/safety/inspections/coverage",
    summary="Which grids and key units were inspected in a period (days, inclusive), and which not",
)
def inspection_coverage(
    request: Request,
    start: Annotated[date, Query(description="first day, YYYY-MM-DD")],
    end: Annotated[date, Query(description="last day, YYYY-MM-DD (inclusive)")],
    who: Viewer = Depends(OFFICE),
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
):
    """Per district as the summary: a bound caller's grids and key units, or ``?district=``'s."""
    if end < start:
        raise BadRequest(f"end {end} is before start {start}")
    if end - start > timedelta(days=3660):
        raise BadRequest("the period may be at most ten years")
    first, _ = hazard_loop.day_bounds(start, _zone(request))
    _, last = hazard_loop.day_bounds(end, _zone(request))
    with reading_transaction(request) as conn:
        who = narrowed(conn, who, district)
        return _json(inspections.coverage(conn, first, last, who.district))
