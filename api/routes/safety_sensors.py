"""物联感知预警 over HTTP: readings posted in bulk by sensor gateways, the live warnings list (JSON
or GeoJSON for the safety map), a sensor's warning history, and a Server-Sent Events stream of
warnings raised and cleared.

``POST /safety/readings`` takes ``text/csv`` or ``application/x-ndjson`` (tens of thousands of
lines; the body is bounded by ``ONEMAP_MAX_BODY_BYTES``, 10 MB by default, about 200,000 CSV
readings); the caller is checked before the body is read. The stream reads the feed when any
process's warning is notified (api.change_listener), else every ``ONEMAP_STREAM_POLL_SECONDS``
(:data:`POLL_SECONDS` by default), on a pooled connection it gives back at once, so an open
stream holds no database connection; it sends a comment every :data:`HEARTBEAT_SECONDS` when quiet, and resumes
from ``Last-Event-ID`` (or ``?after=``, the ``stream_after`` of the list it was loaded with).

EventSource cannot send an Authorization header and tokens are not taken from the address (they
would be written to access logs): the page reads the stream with ``fetch()`` and the header.
Thin: geo.safety.readings and geo.safety.warnings do the work.
"""

from __future__ import annotations

import time
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from api.deps import read_engine, require_role
from geo.database import transaction
from geo.errors import BadRequest
from geo.models.hazards import SENSOR_KINDS
from geo.policy.district_scope import must_see, narrowed
from geo.policy.roles import Viewer
from geo.safety import warnings as sensor_warnings
from geo.safety.readings import ingest

router = APIRouter(tags=["safety 城市安全"])
GATEWAYS = require_role("safety", "admin")
READERS = require_role("safety", "admin", "planner")
#: how often an open stream asks the database what changed when no notification woke it
POLL_SECONDS = 1.5  # the default of SafetySettings.stream_poll_seconds
#: a comment line when nothing was sent for this long (proxies close silent connections)
HEARTBEAT_SECONDS = 15.0
#: what the browser waits before reconnecting a dropped stream
RETRY_MS = 3_000

_READINGS_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "sensor_code,observed_at,value\n"
                "GZ320117000001,2026-12-06T10:00:00+08:00,3.62\n",
            },
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": '{"sensor_code": "GZ320117000001", '
                '"observed_at": "2026-12-06T10:00:00+08:00", "value": 3.62}\n',
            },
        },
    }
}


def _json(body, status: int = 200, media_type: str = "application/json") -> Response:
    return Response(orjson.dumps(body), status, media_type=media_type)


def _store(request: Request, body: bytes, media_type: str):
    limits = request.app.state.settings.limits
    with transaction(request.app.state.engine, limits.write_timeout_ms) as conn:
        return ingest(conn, body, media_type)


@router.post(
    "/safety/readings",
    summary="传感器读数批量入库 Post readings in bulk (CSV or JSON lines; safety, admin)",
    openapi_extra=_READINGS_BODY,
    responses={
        200: {"description": "received, stored, duplicates, late; warnings opened/updated/cleared"},
        400: {"description": "a bad line: the whole batch is refused, the lines are named"},
    },
)
async def post_readings(request: Request, who: Viewer = Depends(GATEWAYS)):
    media_type = request.headers.get("content-type", "")
    body = await request.body()  # bounded by api.limits (413 past ONEMAP_MAX_BODY_BYTES)
    report = await run_in_threadpool(_store, request, body, media_type)
    return _json(report.to_dict())


Kind = Annotated[str | None, Query(description=f"one of {', '.join(SENSOR_KINDS)}")]


@router.get(
    "/safety/warnings",
    summary="当前预警 The open warnings, newest first (JSON, or ?f=geojson for the map)",
)
def open_warnings(
    request: Request,
    f: Annotated[str | None, Query(description="json (default) or geojson")] = None,
    kind: Kind = None,
    grid: Annotated[str | None, Query(description="a grid's code", max_length=15)] = None,
    who: Viewer = Depends(READERS),
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
):
    if kind is not None and kind not in SENSOR_KINDS:
        raise BadRequest(f"kind {kind!r}: give one of {', '.join(SENSOR_KINDS)}")
    if f not in (None, "json", "geojson"):
        raise BadRequest(f"f={f}: give json or geojson")
    with read_engine(request).connect() as conn:
        who = narrowed(conn, who, district)
        after = sensor_warnings.latest_id(conn)  # before the list: a stream from it misses none
        rows = sensor_warnings.live(conn, kind, grid, district=who.district)
    if f == "geojson":
        body = sensor_warnings.as_features(rows) | {"stream_after": after}
        return _json(body, media_type="application/geo+json")
    return _json({"count": len(rows), "stream_after": after, "warnings": rows})


@router.get(
    "/safety/sensors/{sensor_id}/warnings",
    summary="传感器预警历史 A sensor and its warnings, newest first",
)
def sensor_history(
    request: Request,
    sensor_id: int,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 200,
    who: Viewer = Depends(READERS),
):
    with read_engine(request).connect() as conn:
        body = sensor_warnings.history(conn, sensor_id, limit)
    must_see(who, body["sensor"]["grid_code"], f"sensor {sensor_id} in your district")
    return _json(body)


def _event(name: str, cursor: int, data: dict) -> bytes:
    return f"event: {name}\nid: {cursor}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


def _feed_call(request: Request, step, *args):
    """One feed step on a pooled connection, given back before the stream waits again."""
    with read_engine(request).connect() as conn:
        return step(conn, *args)


@router.get(
    "/safety/warnings/stream",
    summary="预警实时推送 Warnings raised and cleared, as Server-Sent Events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def warning_stream(
    request: Request,
    after: Annotated[
        int | None, Query(ge=0, description="resume after this warning id (stream_after)")
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    who: Viewer = Depends(READERS),
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
):
    """A district-bound reader's stream tells only of their district's sensors (as the list);
    ``?district=`` narrows a whole-city reader's, and is checked before the stream opens."""
    if district is not None:
        who = await run_in_threadpool(_feed_call, request, narrowed, who, district)
    if last_event_id and last_event_id.strip().isdigit():
        after = int(last_event_id.strip())
    # woken at once by any process's warning (LISTEN onemap_warnings, api.change_listener),
    # listening from before the feed's start so that none raised meanwhile waits for the slow
    # poll, which stays as the fallback should a notification be lost
    bell = request.app.state.warning_bell
    poll_seconds = request.app.state.settings.safety.stream_poll_seconds
    waiter = bell.subscribe()
    try:
        feed, backlog = await run_in_threadpool(
            _feed_call, request, sensor_warnings.start, after, who.district
        )
    except BaseException:
        bell.unsubscribe(waiter)
        raise

    async def events():
        try:
            yield f"retry: {RETRY_MS}\n: 预警推送 connected\n\n".encode()
            pending, quiet_since, polled = backlog, time.monotonic(), time.monotonic()
            while True:
                for name, data, cursor in pending:
                    yield _event(name, cursor, data)
                now = time.monotonic()
                if pending:
                    quiet_since, pending = now, []
                elif now - quiet_since >= HEARTBEAT_SECONDS:
                    yield b": heartbeat\n\n"
                    quiet_since = now
                due = min(polled + poll_seconds, quiet_since + HEARTBEAT_SECONDS)
                # a client gone cancels the stream here
                rung = await bell.wait(waiter, max(due - time.monotonic(), 0.0))
                if rung or time.monotonic() >= polled + poll_seconds:
                    polled = time.monotonic()
                    pending = await run_in_threadpool(
                        _feed_call, request, sensor_warnings.poll, feed
                    )
        finally:
            bell.unsubscribe(waiter)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
