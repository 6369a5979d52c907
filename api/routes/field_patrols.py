"""网格员巡查 over HTTP: start a patrol, send its track, verify records ("checked, still true"),
report a hazard with a photo, end it; and the office's freshness figures (网格数据鲜活度).

Thin: parse, open one transaction, call ``geo.records.patrols`` / ``freshness``, answer. Edits made
on a patrol go through the records API (``/records/{type}/{id}``) as any edit does; the patrol
finds them in the record history when it ends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.engine import make_url
from starlette.datastructures import UploadFile

from api.deps import Caller, reading_transaction, require_role, writing_transaction
from geo.assets.photos import MAX_PHOTO_BYTES
from geo.errors import Invalid, TooLarge, Unsupported
from geo.models.hazards import HAZARD_CATEGORIES
from geo.policy.roles import Viewer
from geo.records import freshness as record_freshness
from geo.records import patrols
from geo.safety import hazard_loop

router = APIRouter(tags=["field 网格员"])
WALKERS = require_role(*patrols.WALKERS)
PatrolId = Annotated[int, PathParam(ge=1, le=2**62)]
MAX_FORM_BYTES = MAX_PHOTO_BYTES + 64 * 1024


def _json(body, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status, media_type=media_type)


def _now() -> datetime:
    return datetime.now(UTC)


def _folder(request: Request) -> Path:
    """This database's photo folder: hazard evidence lives where the hazard loop keeps it."""
    database = make_url(request.app.state.engine.url).database or "onemap"
    return request.app.state.settings.service.photos / database


def _metric_srid(request: Request) -> int:
    return request.app.state.settings.spatial.metric_srid


@router.post("/field/patrols", status_code=201, summary="Start a patrol of your grids (巡查开始)")
def start_patrol(request: Request, who: Viewer = Depends(WALKERS)):
    with writing_transaction(request) as conn:
        return _json(patrols.start(conn, who, _now()), 201)


class Track(BaseModel):
    model_config = {"extra": "forbid"}
    points: list[list] = Field(
        ...,
        min_length=1,
        max_length=patrols.MAX_POINTS_PER_CALL,
        description='[[lon, lat, "ISO 8601 time with zone"], …] in CGCS2000, in time order',
    )


@router.post(
    "/field/patrols/{patrol_id}/track", summary="Append points to a running patrol's track"
)
def add_track(
    request: Request,
    patrol_id: PatrolId,
    body: Annotated[Track, Body()],
    who: Viewer = Depends(WALKERS),
):
    with writing_transaction(request) as conn:
        return _json(patrols.add_track(conn, who, patrol_id, body.points, _now()))


class Verify(BaseModel):
    model_config = {"extra": "forbid"}
    record_type: str = Field(..., max_length=20, description="buildings, addresses, houses, …")
    record_id: int = Field(..., ge=1, le=2**62)
    patrol_id: int | None = Field(None, ge=1, le=2**62, description="the patrol, if on one")


@router.post(
    "/field/verify",
    summary="核实: stamp a record 'checked, still true' (its version does not move)",
)
def verify(request: Request, body: Annotated[Verify, Body()], who: Caller):
    with writing_transaction(request) as conn:
        made = patrols.verify(
            conn, who, body.record_type, body.record_id, _now(), patrol_id=body.patrol_id
        )
    return _json(made)


class PatrolHazard(BaseModel):
    model_config = {"extra": "forbid"}
    category: str = Field(..., max_length=16, description=", ".join(HAZARD_CATEGORIES))
    level: int = Field(4, ge=1, le=4, description="1 (most severe) to 4; the office grades it")
    description: str = Field(..., min_length=1, max_length=2000)
    lon: float = Field(..., ge=-180, le=180, description="CGCS2000 longitude")
    lat: float = Field(..., ge=-90, le=90, description="CGCS2000 latitude")


async def _hazard_form(request: Request) -> tuple[PatrolHazard, list]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise Unsupported("send multipart/form-data: category, level, description, lon, lat, photo")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise TooLarge(
            f"内容过大: one photo of at most {MAX_PHOTO_BYTES // 2**20} MB and a few fields"
        )
    form = await request.form(max_files=1, max_fields=10)
    try:
        fields, photos = {}, []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(MAX_PHOTO_BYTES + 1)
                photos.append(hazard_loop.checked_photo(data, value.filename))
            elif value != "":
                fields[key] = value
    finally:
        await form.close()
    try:
        return PatrolHazard.model_validate(fields), photos
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise Invalid(f"请求有误: {where}: {first['msg']}") from None


@router.post(
    "/field/patrols/{patrol_id}/hazards",
    status_code=201,
    summary="Report a hazard found on the patrol, with a photo (into the hazard loop)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["category", "description", "lon", "lat"],
                        "properties": {
                            "category": {"type": "string"},
                            "level": {"type": "integer", "default": 4},
                            "description": {"type": "string"},
                            "lon": {"type": "number"},
                            "lat": {"type": "number"},
                            "photo": {"type": "string", "format": "binary"},
                        },
                    }
                }
            }
        }
    },
)
async def patrol_hazard(request: Request, patrol_id: PatrolId, who: Viewer = Depends(WALKERS)):
    body, photos = await _hazard_form(request)  # the caller is checked before the body is read
    return await run_in_threadpool(_keep_hazard, request, patrol_id, body, photos, who)


def _keep_hazard(request: Request, patrol_id: int, body: PatrolHazard, photos, who: Viewer):
    now = request.app.state.settings.safety.hazard_clock or _now()
    with writing_transaction(request) as conn:
        made = patrols.report_hazard(
            conn,
            who,
            patrol_id,
            category=body.category,
            level=body.level,
            description=body.description,
            lon=body.lon,
            lat=body.lat,
            now=now,
            photos=photos,
            folder=_folder(request),
            deadline_days=request.app.state.settings.safety.deadline_days,
        )
        feature = hazard_loop.get(conn, made["id"], now, personal=who.role == "admin")
    return _json(feature | {"patrol_id": patrol_id}, 201, "application/geo+json")


@router.post("/field/patrols/{patrol_id}/end", summary="End a patrol: buildings visited, records")
def end_patrol(request: Request, patrol_id: PatrolId, who: Viewer = Depends(WALKERS)):
    with writing_transaction(request) as conn:
        return _json(patrols.end(conn, who, patrol_id, _now(), _metric_srid(request)))


@router.get("/field/patrols/{patrol_id}", summary="One patrol: its track, buildings, records")
def one_patrol(request: Request, patrol_id: PatrolId, who: Caller):
    with reading_transaction(request) as conn:
        return _json(patrols.summary(conn, who, patrol_id))


@router.get(
    "/field/freshness",
    summary="网格数据鲜活度: per grid, community or street (f=geojson: a layer to colour)",
)
def freshness(
    request: Request,
    who: Caller,
    level: Annotated[str, Query(pattern="^(grid|community|street)$")] = "grid",
    f: Annotated[str, Query(pattern="^(json|geojson)$")] = "json",
):
    with reading_transaction(request) as conn:
        figures = record_freshness.freshness(conn, level, _now(), who)
        if f == "geojson":
            return _json(
                record_freshness.as_layer(conn, figures), media_type="application/geo+json"
            )
    return _json(figures)
