"""四标四实 records, in the shape of OGC API – Features Part 4: POST to the items, PUT/PATCH/DELETE
on an item with If-Match, plus history, restore, reviews and offline sync.

Thin: parse the request, open one transaction, call ``geo.records``, answer. A refusal rolls the
transaction back before the problem+json answer is written, so the database is as it was.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from api.deps import viewer
from api.errors import Problem
from geo.access import Viewer
from geo.records import TYPES, RecordError, record_type, store, sync
from geo.records import edits as record_edits
from geo.records import history as record_history
from geo.records.types import check_crs

router = APIRouter(prefix="/records", tags=["四标四实 records"])
GEOJSON = "application/geo+json"
STATUS = {
    "bad_request": 400,
    "unauthorised": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "stale": 412,
    "too_large": 413,
    "invalid": 422,
    "precondition_required": 428,
}
RecordTypeName = Annotated[
    str, Path(description="addresses, buildings, houses, residents, organisations, facilities")
]
RecordId = Annotated[int, Path(ge=1, le=2**62)]
Purpose = Annotated[
    str | None, Query(max_length=500, description="Why you need personal data unmasked (audited)")
]
IfMatch = Annotated[
    str | None, Header(alias="If-Match", description='The ETag you read, e.g. "v3"')
]
_FEATURE = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "enum": ["Feature"]},
        "properties": {"type": "object"},
        "geometry": {"type": ["object", "null"]},
    },
}
_SYNC = {
    "type": "object",
    "required": ["edits"],
    "properties": {
        "edits": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["client_id", "type", "action"],
                "properties": {
                    "client_id": {"type": "string"},
                    "type": {"type": "string"},
                    "action": {"type": "string", "enum": ["create", "update", "replace", "delete"]},
                    "id": {"type": "integer"},
                    "base_version": {"type": "integer"},
                    "properties": {"type": "object"},
                    "geometry": {"type": ["object", "null"]},
                },
            },
        }
    },
}


def _request_body(
    schema: dict, media_types: tuple[str, ...] = (GEOJSON, "application/json")
) -> dict:
    """Document a body we read ourselves (to answer malformed JSON with our own problem+json)."""
    return {
        "requestBody": {"required": True, "content": {m: {"schema": schema} for m in media_types}}
    }


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def _problem(exc: RecordError) -> Problem:
    extra, headers = {}, None
    current = exc.extra.get("current")
    if current is not None:
        extra["current_version"] = current.version
        headers = {"ETag": current.etag}
    if exc.kind == "unauthorised":
        headers = {"WWW-Authenticate": "Bearer"}
    return Problem(STATUS.get(exc.kind, 400), exc.detail, headers=headers, **extra)


def _type(name: str):
    try:
        return record_type(name)
    except RecordError as exc:
        raise _problem(exc) from exc


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if value == "*":
        raise Problem(
            428, 'If-Match: * would overwrite whatever is there: send the ETag you read, e.g. "v3"'
        )
    match = re.fullmatch(r'(?:W/)?"?v?(\d{1,9})"?', value)
    if not match:
        raise Problem(400, f'If-Match {value!r} is not an ETag of this service: send e.g. "v3"')
    return int(match.group(1))


async def _body(request: Request) -> object:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", GEOJSON, "application/merge-patch+json"):
        raise Problem(
            415, f"send JSON (application/geo+json or application/json), not {kind or 'nothing'}"
        )
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Problem(400, f"the body is not valid JSON: {exc}") from exc


def _feature_parts(body: object, whole: bool) -> tuple[dict | None, dict | None]:
    if not isinstance(body, dict):
        raise Problem(422, "send a GeoJSON Feature object")
    if whole and body.get("type") != "Feature":
        raise Problem(
            422,
            'send a GeoJSON Feature: {"type": "Feature", "properties": {...}, "geometry": {...}}',
        )
    try:
        check_crs(body)
    except RecordError as exc:
        raise _problem(exc) from exc
    props = body.get("properties")
    if props is not None and not isinstance(props, dict):
        raise Problem(422, "properties must be a JSON object")
    return props, body.get("geometry")


def _answer(
    request: Request, rtype_name: str, outcome: record_edits.Outcome, created: bool = False
) -> Response:
    if outcome.status == "pending":
        location = f"{str(request.base_url).rstrip('/')}/records/reviews?status=pending"
        body = {
            "status": "pending",
            "review_id": outcome.review_id,
            "detail": "等待社区审核 waiting for a community reviewer's approval",
        }
        return Response(
            orjson.dumps(body),
            status_code=202,
            media_type="application/json",
            headers={"Location": location},
        )
    if outcome.record is None:
        return Response(status_code=204)
    record = outcome.record
    headers = {
        "ETag": record.etag,
        "Location": f"{str(request.base_url).rstrip('/')}/records/{rtype_name}/{record.id}",
    }
    return Response(
        orjson.dumps(record.feature()),
        status_code=201 if created else 200,
        media_type=GEOJSON,
        headers=headers,
    )


def _write(
    request: Request,
    who: Viewer,
    rtype_name: str,
    action: str,
    record_id: int | None,
    if_match: int | None,
    props,
    geometry,
) -> Response:
    rtype = _type(rtype_name)
    try:
        with _engine(request).begin() as conn:
            outcome = record_edits.submit(
                conn, who, rtype, action, record_id, if_match, props, geometry
            )
    except RecordError as exc:
        raise _problem(exc) from exc
    return _answer(request, rtype_name, outcome, created=action == "create")


# --- the fixed paths first: sync and reviews ---------------------------------------------------


@router.post(
    "/sync",
    summary="Apply a batch of offline edits; answer each: applied, pending, conflict, rejected",
    openapi_extra=_request_body(_SYNC, ("application/json",)),
)
async def sync_batch(request: Request, who: Viewer = Depends(viewer)):
    body = await _body(request)
    try:
        store.require_scope(who, write=True)
        edits_ = sync.parse(body)
        results = sync.run(_engine(request), who, edits_)
    except RecordError as exc:
        raise _problem(exc) from exc
    summary: dict[str, int] = {}
    for r in results:
        summary[r["status"]] = summary.get(r["status"], 0) + 1
    return Response(
        orjson.dumps({"summary": summary, "results": results}), media_type="application/json"
    )


@router.get("/reviews", summary="Changes waiting for (or past) review")
def reviews(
    request: Request,
    who: Viewer = Depends(viewer),
    status: Annotated[str, Query(pattern="^(pending|approved|rejected)$")] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
):
    try:
        with _engine(request).connect() as conn:
            store.require_scope(who, write=False)
            rows = record_edits.list_reviews(conn, who, status, limit)
    except RecordError as exc:
        raise _problem(exc) from exc
    return Response(orjson.dumps({"reviews": rows}, default=str), media_type="application/json")


@router.post("/reviews/{review_id}/{decision}", summary="Approve or reject a pending change")
def decide(
    request: Request,
    review_id: Annotated[int, Path(ge=1, le=2**62)],
    decision: Annotated[str, Path(pattern="^(approve|reject)$")],
    note: Annotated[str | None, Query(max_length=500)] = None,
    who: Viewer = Depends(viewer),
):
    try:
        store.require_scope(who, write=False)
        with _engine(request).begin() as conn:
            result = record_edits.decide(conn, who, review_id, decision == "approve", note)
    except RecordError as exc:
        raise _problem(exc) from exc
    if "refused" in result:  # closed as rejected (committed), and the reviewer is told why
        raise _problem(RecordError(result["refused"], result["note"]))
    return Response(orjson.dumps(result), media_type="application/json")


# --- items ---------------------------------------------------------------------------------------


@router.get("", summary="The record types")
def record_types(request: Request):
    base = str(request.base_url).rstrip("/")
    return {
        "types": [
            {"id": t.name, "title": t.title_zh, "href": f"{base}/records/{t.name}"}
            for t in TYPES.values()
        ]
    }


@router.get("/{rtype_name}", summary="Records you may read (your grids, or all)")
def list_items(
    request: Request,
    rtype_name: RecordTypeName,
    who: Viewer = Depends(viewer),
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    purpose: Purpose = None,
):
    rtype = _type(rtype_name)
    try:
        with _engine(request).begin() as conn:
            records, total, unmasked = store.list_records(conn, who, rtype, limit, offset, purpose)
    except RecordError as exc:
        raise _problem(exc) from exc
    body = {
        "type": "FeatureCollection",
        "numberMatched": total,
        "numberReturned": len(records),
        "features": [r.feature(masked=not unmasked) for r in records],
    }
    return Response(orjson.dumps(body), media_type=GEOJSON)


@router.post(
    "/{rtype_name}",
    status_code=201,
    summary="Create a record (a GeoJSON Feature)",
    openapi_extra=_request_body(_FEATURE),
)
async def create(request: Request, rtype_name: RecordTypeName, who: Viewer = Depends(viewer)):
    body = await _body(request)
    props, geometry = _feature_parts(body, whole=True)
    return _write(request, who, rtype_name, "create", None, None, props, geometry)


@router.get("/{rtype_name}/{record_id}", summary="One record, with its ETag")
def get_item(
    request: Request,
    rtype_name: RecordTypeName,
    record_id: RecordId,
    who: Viewer = Depends(viewer),
    purpose: Purpose = None,
):
    rtype = _type(rtype_name)
    try:
        with _engine(request).begin() as conn:
            record, unmasked = store.read(conn, who, rtype, record_id, purpose)
    except RecordError as exc:
        raise _problem(exc) from exc
    return Response(
        orjson.dumps(record.feature(masked=not unmasked)),
        media_type=GEOJSON,
        headers={"ETag": record.etag},
    )


@router.put(
    "/{rtype_name}/{record_id}",
    summary="Replace a record (If-Match required)",
    openapi_extra=_request_body(_FEATURE),
)
async def replace(
    request: Request,
    rtype_name: RecordTypeName,
    record_id: RecordId,
    if_match: IfMatch = None,
    who: Viewer = Depends(viewer),
):
    version = _if_match(if_match)
    props, geometry = _feature_parts(await _body(request), whole=True)
    return _write(request, who, rtype_name, "replace", record_id, version, props, geometry)


@router.patch(
    "/{rtype_name}/{record_id}",
    summary="Change some fields of a record (If-Match required)",
    openapi_extra=_request_body(
        _FEATURE, (GEOJSON, "application/json", "application/merge-patch+json")
    ),
)
async def update(
    request: Request,
    rtype_name: RecordTypeName,
    record_id: RecordId,
    if_match: IfMatch = None,
    who: Viewer = Depends(viewer),
):
    version = _if_match(if_match)
    props, geometry = _feature_parts(await _body(request), whole=False)
    return _write(request, who, rtype_name, "update", record_id, version, props, geometry)


@router.delete(
    "/{rtype_name}/{record_id}", status_code=204, summary="Delete a record (If-Match required)"
)
def delete(
    request: Request,
    rtype_name: RecordTypeName,
    record_id: RecordId,
    if_match: IfMatch = None,
    who: Viewer = Depends(viewer),
):
    return _write(request, who, rtype_name, "delete", record_id, _if_match(if_match), None, None)


@router.get(
    "/{rtype_name}/{record_id}/history",
    summary="Every version of a record: who, when, what changed",
)
def history(
    request: Request,
    rtype_name: RecordTypeName,
    record_id: RecordId,
    who: Viewer = Depends(viewer),
    purpose: Purpose = None,
):
    rtype = _type(rtype_name)
    try:
        with _engine(request).begin() as conn:
            versions = record_history.versions(conn, who, rtype, record_id, purpose)
    except RecordError as exc:
        raise _problem(exc) from exc
    return Response(
        orjson.dumps({"type": rtype.name, "id": record_id, "versions": versions}),
        media_type="application/json",
    )


@router.post(
    "/{rtype_name}/{record_id}/history/{version}/restore",
    summary="Restore a past version as a new version (If-Match required)",
)
def restore(
    request: Request,
    rtype_name: RecordTypeName,
    record_id: RecordId,
    version: Annotated[int, Path(ge=1, le=2**31)],
    if_match: IfMatch = None,
    who: Viewer = Depends(viewer),
):
    rtype = _type(rtype_name)
    expected = _if_match(if_match)
    try:
        with _engine(request).begin() as conn:
            outcome = record_history.restore(conn, who, rtype, record_id, version, expected)
    except RecordError as exc:
        raise _problem(exc) from exc
    return _answer(request, rtype_name, outcome)
