"""四标四实 records, in the shape of OGC API – Features Part 4: POST to the items, PUT/PATCH/DELETE
on an item with If-Match, plus history, restore, reviews and offline sync.

Thin: parse the request, open one transaction, call ``geo.records``, answer. A refusal rolls the
transaction back before the problem+json answer is written, so the database is as it was.
"""

from __future__ import annotations

import re
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from api.deps import Caller, DbEngine, Rules, reading_transaction, writing_transaction
from api.html import base_url
from api.limits import parse_json
from geo.errors import BadRequest, Invalid, OnemapError, PreconditionRequired, Unsupported
from geo.policy.roles import Viewer
from geo.records import TYPES, record_type, store, sync
from geo.records import edits as record_edits
from geo.records import history as record_history
from geo.records.types import Change, EditRules, check_crs

router = APIRouter(prefix="/records", tags=["四标四实 records"])
GEOJSON = "application/geo+json"
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


def _if_match(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip()
    if value == "*":
        raise PreconditionRequired(
            'If-Match: * would overwrite whatever is there: send the ETag you read, e.g. "v3"'
        )
    match = re.fullmatch(r'(?:W/)?"?v?(\d{1,9})"?', value)
    if not match:
        raise BadRequest(f'If-Match {value!r} is not an ETag of this service: send e.g. "v3"')
    return int(match.group(1))


async def _body(request: Request) -> object:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("application/json", GEOJSON, "application/merge-patch+json"):
        raise Unsupported(
            f"send JSON (application/geo+json or application/json), not {kind or 'nothing'}"
        )
    return parse_json(await request.body())


def _feature_parts(body: object, whole: bool) -> tuple[dict | None, dict | None]:
    if not isinstance(body, dict):
        raise Invalid("send a GeoJSON Feature object")
    if whole and body.get("type") != "Feature":
        raise Invalid(
            'send a GeoJSON Feature: {"type": "Feature", "properties": {...}, "geometry": {...}}'
        )
    check_crs(body)
    props = body.get("properties")
    if props is not None and not isinstance(props, dict):
        raise Invalid("properties must be a JSON object")
    return props, body.get("geometry")


def _answer(
    request: Request,
    who: Viewer,
    rtype_name: str,
    outcome: record_edits.Outcome,
    created: bool = False,
) -> Response:
    if outcome.status == "pending":
        location = f"{base_url(request)}/records/reviews?status=pending"
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
        "Location": f"{base_url(request)}/records/{rtype_name}/{record.id}",
    }
    return Response(
        orjson.dumps(record.feature(record_type(rtype_name).plan(who))),
        status_code=201 if created else 200,
        media_type=GEOJSON,
        headers=headers,
    )


def _write(request: Request, who: Viewer, rules: EditRules, change: Change) -> Response:
    with writing_transaction(request) as conn:
        outcome = record_edits.submit(conn, who, change, rules)
    return _answer(request, who, change.rtype.name, outcome, created=change.action == "create")


class Target:
    """The record an edit aims at (its type and id), who aims it, and the version they read."""

    def __init__(
        self,
        request: Request,
        rtype_name: RecordTypeName,
        record_id: RecordId,
        who: Caller,
        rules: Rules,
        if_match: IfMatch = None,
    ):
        self.request, self.who, self.rules = request, who, rules
        self.rtype = record_type(rtype_name)
        self.record_id = record_id
        self.version = _if_match(if_match)

    def change(self, action: str, properties=None, geometry=None) -> Change:
        return Change(self.rtype, action, self.record_id, self.version, properties, geometry)


Aimed = Annotated[Target, Depends()]


class RecordReading:
    """A read of records: their type, the caller (who must have the workspace: 401/403 before
    anything about the purpose), and what the read plan lets the caller see."""

    def __init__(
        self, request: Request, rtype_name: RecordTypeName, who: Caller, purpose: Purpose = None
    ):
        self.rtype = record_type(rtype_name)
        store.require_scope(who, write=False)
        self.who, self.request = who, request
        self.plan = self.rtype.plan(who, purpose)

    def transaction(self):
        return reading_transaction(self.request)


Reads = Annotated[RecordReading, Depends()]


async def _write_body(target: Target, action: str, whole: bool) -> Response:
    """An edit whose content is the request's GeoJSON body (database work off the event loop)."""
    props, geometry = _feature_parts(await _body(target.request), whole=whole)
    change = target.change(action, props, geometry)
    return await run_in_threadpool(_write, target.request, target.who, target.rules, change)


# --- the fixed paths first: sync and reviews ---------------------------------------------------


@router.post(
    "/sync",
    summary="Apply a batch of offline edits; answer each: applied, pending, conflict, rejected",
    openapi_extra=_request_body(_SYNC, ("application/json",)),
)
async def sync_batch(request: Request, who: Caller, rules: Rules, engine: DbEngine):
    body = await _body(request)
    store.require_scope(who, write=True)
    edits_ = sync.parse(body, rules.max_sync_edits)
    # database work off the event loop: a large batch must not stall other requests
    results = await run_in_threadpool(sync.run, engine, who, edits_, rules)
    summary: dict[str, int] = {}
    for r in results:
        summary[r["status"]] = summary.get(r["status"], 0) + 1
    return Response(
        orjson.dumps({"summary": summary, "results": results}), media_type="application/json"
    )


@router.get("/reviews", summary="Changes waiting for (or past) review")
def reviews(
    request: Request,
    who: Caller,
    status: Annotated[str, Query(pattern="^(pending|approved|rejected)$")] = "pending",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    purpose: Purpose = None,
):
    store.require_scope(who, write=False)
    with reading_transaction(request) as conn:
        rows = record_edits.list_reviews(conn, who, status, limit, purpose)
    return Response(orjson.dumps({"reviews": rows}, default=str), media_type="application/json")


@router.post("/reviews/{review_id}/{decision}", summary="Approve or reject a pending change")
def decide(
    review_id: Annotated[int, Path(ge=1, le=2**62)],
    decision: Annotated[str, Path(pattern="^(approve|reject)$")],
    request: Request,
    who: Caller,
    rules: Rules,
    note: Annotated[str | None, Query(max_length=500)] = None,
):
    store.require_scope(who, write=False)
    with writing_transaction(request) as conn:
        result = record_edits.decide(conn, who, review_id, decision == "approve", note, rules)
    if "refused" in result:  # closed as rejected (committed), and the reviewer is told why
        raise OnemapError.of_kind(result["refused"])(result["note"])
    return Response(orjson.dumps(result), media_type="application/json")


# --- items ---------------------------------------------------------------------------------------


@router.get("", summary="The record types")
def record_types(request: Request):
    base = base_url(request)
    return {
        "types": [
            {"id": t.name, "title": t.title_zh, "href": f"{base}/records/{t.name}"}
            for t in TYPES.values()
        ]
    }


@router.get("/{rtype_name}", summary="Records you may read (your grids, or all)")
def list_items(
    r: Reads,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
):
    with r.transaction() as conn:
        records, total = store.list_records(conn, r.who, r.rtype, limit, offset, r.plan)
    body = {
        "type": "FeatureCollection",
        "numberMatched": total,
        "numberReturned": len(records),
        "features": [record.feature(r.plan) for record in records],
    }
    return Response(orjson.dumps(body), media_type=GEOJSON)


@router.post(
    "/{rtype_name}",
    status_code=201,
    summary="Create a record (a GeoJSON Feature)",
    openapi_extra=_request_body(_FEATURE),
)
async def create(request: Request, rtype_name: RecordTypeName, who: Caller, rules: Rules):
    props, geometry = _feature_parts(await _body(request), whole=True)
    change = Change(record_type(rtype_name), "create", None, None, props, geometry)
    return await run_in_threadpool(_write, request, who, rules, change)


@router.get("/{rtype_name}/{record_id}", summary="One record, with its ETag")
def get_item(record_id: RecordId, r: Reads):
    with r.transaction() as conn:
        record = store.read(conn, r.who, r.rtype, record_id, r.plan)
    return Response(
        orjson.dumps(record.feature(r.plan)), media_type=GEOJSON, headers={"ETag": record.etag}
    )


@router.put(
    "/{rtype_name}/{record_id}",
    summary="Replace a record (If-Match required)",
    openapi_extra=_request_body(_FEATURE),
)
async def replace(target: Aimed):
    return await _write_body(target, "replace", whole=True)


@router.patch(
    "/{rtype_name}/{record_id}",
    summary="Change some fields of a record (If-Match required)",
    openapi_extra=_request_body(
        _FEATURE, (GEOJSON, "application/json", "application/merge-patch+json")
    ),
)
async def update(target: Aimed):
    return await _write_body(target, "update", whole=False)


@router.delete(
    "/{rtype_name}/{record_id}", status_code=204, summary="Delete a record (If-Match required)"
)
def delete(target: Aimed):
    return _write(target.request, target.who, target.rules, target.change("delete"))


@router.get(
    "/{rtype_name}/{record_id}/history",
    summary="Every version of a record: who, when, what changed",
)
def history(record_id: RecordId, r: Reads):
    with r.transaction() as conn:
        versions = record_history.versions(conn, r.who, r.rtype, record_id, r.plan)
    return Response(
        orjson.dumps({"type": r.rtype.name, "id": record_id, "versions": versions}),
        media_type="application/json",
    )


@router.post(
    "/{rtype_name}/{record_id}/history/{version}/restore",
    summary="Restore a past version as a new version (If-Match required)",
)
def restore(version: Annotated[int, Path(ge=1, le=2**31)], target: Aimed):
    t = target
    with writing_transaction(t.request) as conn:
        outcome = record_history.restore(
            conn, t.who, t.rtype, t.record_id, version, t.version, t.rules
        )
    return _answer(t.request, t.who, t.rtype.name, outcome)
