"""城市安全 over HTTP: the 119 five-level linkage (``POST /safety/alarms``: one alarm, one answer,
kept; ``GET /safety/alarms`` and ``/safety/alarms/{id}``: what was answered) and the risk layer
(``GET /safety/risk``: a score per grid or H3 cell, as GeoJSON for the safety map)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import read_engine, reading_transaction, require_role
from geo.crs import gcj02_to_wgs84
from geo.database import transaction
from geo.errors import BadRequest, NotFound
from geo.policy.district_scope import must_see, narrowed
from geo.policy.roles import Viewer
from geo.safety import alarm, risk

router = APIRouter(tags=["safety 城市安全"])
RESPONDERS = require_role("safety", "admin")
RISK_READERS = require_role("safety", "admin", "planner")
GEOJSON = "application/geo+json"
CRS_GIVEN = ("CGCS2000", "WGS84", "GCJ-02")
RISK_LEVELS = ("grid", "h3_8", "h3_9")


class Alarm(BaseModel):
    """一次119警情: a point (lon, lat) or an address; the point's CRS if not CGCS2000/WGS 84."""

    model_config = {"extra": "forbid"}
    lon: float | None = Field(None, description="经度 longitude")
    lat: float | None = Field(None, description="纬度 latitude")
    address: str | None = Field(None, max_length=300, description="报警地址 (geocoded)")
    crs: str | None = Field(None, description=f"one of {', '.join(CRS_GIVEN)} (default CGCS2000)")


def _json(body, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status, media_type=media_type)


def _point(body: Alarm) -> tuple[float | None, float | None]:
    """The point in CGCS2000 lon/lat (WGS 84 taken as equal to it, as the district does)."""
    crs = (body.crs or "CGCS2000").strip().upper().replace("_", "-")
    if crs in ("EPSG:4490", "EPSG:4326", "WGS 84"):
        crs = "CGCS2000"
    if crs not in CRS_GIVEN:
        raise BadRequest(
            f"坐标系不支持 / crs must be one of {', '.join(CRS_GIVEN)}, not {body.crs!r}"
        )
    if (body.lon is None) != (body.lat is None):
        raise BadRequest("经纬度须同时给出 / give both lon and lat, or an address")
    if body.lon is None:
        return None, None
    if not (-180 <= body.lon <= 180 and -90 <= body.lat <= 90):
        raise BadRequest(f"坐标超出范围 / ({body.lon}, {body.lat}) is not a lon/lat")
    if crs == "GCJ-02":
        lon, lat = gcj02_to_wgs84([body.lon], [body.lat])
        return float(lon[0]), float(lat[0])
    return body.lon, body.lat


@router.post("/safety/alarms", summary="119 五级联动: answer a fire alarm at a point or address")
def receive_alarm(
    request: Request,
    body: Annotated[Alarm, Body()],
    who: Viewer = Depends(RESPONDERS),
):
    """A district-bound responder answers alarms in their own district only: one at a point in
    another district is refused (403) before anything near it is read. A command centre answers
    for its jurisdiction; the alarm is that district's, or the whole-city 119 centre's, whose
    answer crosses boundaries, and a district's staff may not read another's people and units.
    Near the boundary a bound responder's answer lists their own district's things only."""
    lon, lat = _point(body)
    if lon is None and not (body.address and body.address.strip()):
        raise BadRequest("报警须给出位置 / give the alarm's point (lon and lat) or its address")
    state = request.app.state
    with transaction(state.engine, state.settings.limits.write_timeout_ms) as conn:
        answer = alarm.respond(
            conn,
            who,
            state.settings.spatial.metric_srid,
            lon=lon,
            lat=lat,
            address=body.address if lon is None else None,
        )
    return _json(answer, 201)


@router.get("/safety/alarms", summary="The latest 119 alarms, newest first")
def list_alarms(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    who: Viewer = Depends(RESPONDERS),
):
    with read_engine(request).connect() as conn:
        return _json({"alarms": alarm.recent(conn, limit, who.district)})


@router.get("/safety/alarms/{alarm_id}", summary="One 119 alarm and the answer it was given")
def show_alarm(request: Request, alarm_id: int, who: Viewer = Depends(RESPONDERS)):
    with read_engine(request).connect() as conn:
        found = alarm.kept(conn, alarm_id)
    if found is None:
        raise NotFound(f"没有该警情 / no alarm {alarm_id}")
    levels = found["response"].get("levels") or [{}]
    must_see(who, levels[0].get("code"), f"alarm {alarm_id} in your district / 辖区内无该警情")
    return _json(found)


@router.get(
    "/safety/risk",
    summary="风险评估: the risk score per grid or H3 cell (8, 9), as GeoJSON",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}},
)
def risk_layer(
    request: Request,
    level: Annotated[str, Query(description=f"one of {', '.join(RISK_LEVELS)}")] = "grid",
    who: Viewer = Depends(RISK_READERS),
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
):
    """A district-bound reader's scores are their district's grids (or cells, counting their
    district's rows), normalised among those; ``?district=`` narrows a whole-city reader's."""
    if level not in RISK_LEVELS:
        raise BadRequest(f"level must be one of {', '.join(RISK_LEVELS)}, not {level!r}")
    now = datetime.now(UTC)
    state = request.app.state
    weights = risk.parse_weights(state.settings.safety.risk_weights)
    with reading_transaction(request) as conn:
        who = narrowed(conn, who, district)
        if level == "grid":
            areas = risk.risk_by_grid(
                conn,
                now,
                weights,
                state.settings.spatial.metric_srid,
                geometry=True,
                district=who.district,
            )
        else:
            areas = risk.risk_by_cell(
                conn, int(level[-1]), now, weights, geometry=True, district=who.district
            )
    features = [
        {
            "type": "Feature",
            "id": a["code"],
            "geometry": a.pop("geometry"),
            "properties": {
                **{k: v for k, v in a.items() if k not in ("terms", "normalised")},
                **{t: round(v, 3) for t, v in a["terms"].items()},
                **{f"{t}_n": v for t, v in a["normalised"].items()},
            },
        }
        for a in areas
    ]
    return _json(
        {
            "type": "FeatureCollection",
            "level": level,
            "computed_at": now.isoformat(),
            "weights": weights,
            "formula": risk.FORMULA,
            "terms_zh": risk.TERMS_ZH,
            "features": features,
        },
        media_type=GEOJSON,
    )
