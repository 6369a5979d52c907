"""Offline sync for the field: a batch of edits made without a network, each applied in its own
transaction, each answered applied / pending / conflict / rejected. Edits carry the client's own
id; the answer is kept, so replaying a batch changes nothing and gets the same answers back.
Conflicts are never resolved silently: the answer carries the server's version and, field by field,
what the client wanted, what the server has, and what the client's base version had (as QField and
Mergin Maps report their deltas)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from geo.database import transaction
from geo.errors import Forbidden, Invalid, OnemapError, TooLarge
from geo.policy.roles import Viewer
from geo.records import edits
from geo.records.store import StaleRecord
from geo.records.types import Change, EditRules, check_crs, record_type

ACTIONS = ("create", "update", "replace", "delete")
#: the largest record id and version an edit may name (ids are bigint, versions integer)
MAX_ID, MAX_VERSION = 2**62, 2**31 - 1


@dataclass(frozen=True)
class Edit:
    client_id: str
    type: str
    action: str
    id: int | None
    base_version: int | None
    properties: dict | None
    geometry: dict | None


def parse(batch: object, limit: int) -> list[Edit]:
    """The batch's edits (at most ``limit``), or an error naming the first malformed one (then
    nothing is applied)."""
    if not isinstance(batch, dict) or not isinstance(batch.get("edits"), list):
        raise Invalid('send {"edits": [...]}: a list of edits')
    raw = batch["edits"]
    if len(raw) > limit:
        raise TooLarge(f"a batch may carry at most {limit} edits; split it")
    out, seen = [], set()
    for n, e in enumerate(raw):
        where = f"edit {n}"
        if not isinstance(e, dict):
            raise Invalid(f"{where} must be an object")
        cid = e.get("client_id")
        if not isinstance(cid, str) or not 1 <= len(cid) <= 100 or not _printable(cid):
            raise Invalid(f"{where}: client_id must be 1–100 printable characters")
        if cid in seen:
            raise Invalid(f"{where}: client_id {cid!r} appears twice in the batch")
        seen.add(cid)
        if e.get("action") not in ACTIONS:
            raise Invalid(f"{where}: action must be one of {', '.join(ACTIONS)}")
        for key, top in (("id", MAX_ID), ("base_version", MAX_VERSION)):
            value = e.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top
            ):
                raise Invalid(f"{where}: {key} must be a whole number from 1 to {top}")
        if (
            not isinstance(e.get("type"), str)
            or not 1 <= len(e["type"]) <= 32
            or not _printable(e["type"])
        ):
            raise Invalid(f"{where}: type must name a record type")
        check_crs(e)
        out.append(
            Edit(
                cid,
                e["type"],
                e["action"],
                e.get("id"),
                e.get("base_version"),
                e.get("properties"),
                e.get("geometry"),
            )
        )
    return out


def _printable(value: str) -> bool:
    """No control characters (NUL cannot even be stored) and no lone surrogates."""
    return value.isprintable() and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def run(engine: Engine, viewer: Viewer, batch: list[Edit], rules: EditRules) -> list[dict]:
    """Apply each edit in its own transaction; return one answer per edit, in order."""
    with engine.connect() as conn:
        user_id = conn.execute(
            text("SELECT id FROM users WHERE username = :u"), {"u": viewer.username}
        ).scalar()
    if user_id is None:
        raise Forbidden("offline sync needs a signed-in user")
    return [_one(engine, viewer, user_id, edit, rules) for edit in batch]


def _one(engine: Engine, viewer: Viewer, user_id: int, edit: Edit, rules: EditRules) -> dict:
    with transaction(engine, rules.timeout_ms) as conn:
        conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
            {"k": f"sync:{user_id}:{edit.client_id}"},
        )
        kept = conn.execute(
            text("SELECT result FROM sync_receipts WHERE user_id = :u AND client_id = :c"),
            {"u": user_id, "c": edit.client_id},
        ).scalar()
        if kept is not None:
            return kept | {"replayed": True}
        answer = _apply(conn, viewer, edit, rules)
        # the answer is serialised here, inside the transaction: an answer that cannot be sent
        # must not leave a receipt behind (every replay would fail the same way)
        orjson.dumps(answer, default=str)
        conn.execute(
            text(
                "INSERT INTO sync_receipts (user_id, client_id, result) VALUES (:u, :c, CAST(:r AS jsonb))"
            ),
            {
                "u": user_id,
                "c": edit.client_id,
                "r": json.dumps(answer, ensure_ascii=False, default=str),
            },
        )
        return answer


def _apply(conn: Connection, viewer: Viewer, edit: Edit, rules: EditRules) -> dict:
    head = {"client_id": edit.client_id, "type": edit.type, "action": edit.action, "id": edit.id}
    savepoint = conn.begin_nested()
    try:
        change = Change(
            record_type(edit.type),
            edit.action,
            edit.id,
            edit.base_version,
            edit.properties,
            edit.geometry,
        )
        outcome = edits.submit(conn, viewer, change, rules)
    except StaleRecord as exc:
        savepoint.rollback()
        return (
            head
            | {"status": "conflict", "reason": exc.detail}
            | _conflict(conn, viewer, edit, exc.current)
        )
    except OnemapError as exc:
        savepoint.rollback()
        return head | {"status": "rejected", "reason": exc.detail, "kind": exc.kind}
    savepoint.commit()
    if outcome.status == "pending":
        return head | {"status": "pending", "review_id": outcome.review_id}
    record = outcome.record
    return head | {
        "status": "applied",
        "id": record.id if record else edit.id,
        "version": record.version if record else None,
    }


def _conflict(conn: Connection, viewer: Viewer, edit: Edit, current) -> dict:
    """The server's version and a field-level diff: yours, the server's, and your base version's,
    each value as the caller's read plan shows it (never a field the plan hides)."""
    plan = record_type(edit.type).plan(viewer)
    base = conn.execute(
        text("""SELECT after FROM record_history WHERE record_type = :t AND record_id = :id AND version = :v
                ORDER BY id DESC LIMIT 1"""),
        {"t": edit.type, "id": edit.id, "v": edit.base_version},
    ).scalar()
    base_props = (base or {}).get("properties", {})
    yours = dict(edit.properties or {})
    if edit.geometry is not None:
        yours["geometry"] = edit.geometry
    server = dict(current.properties) | {"geometry": current.geometry}
    based = dict(base_props) | ({"geometry": base["geometry"]} if base else {})
    grid = current.properties.get("grid_code")
    diff = {}
    for field in sorted(
        (set(yours) | {k for k in server if base and based.get(k) != server.get(k)})
        - {"version", "updated_at"}
        - plan.hidden
    ):
        entry = {
            "yours": plan.mask_value(field, yours.get(field), grid),
            "server": plan.mask_value(field, server.get(field), grid),
        }
        if base:
            entry["base"] = plan.mask_value(field, based.get(field), grid)
            entry["changed_on_server"] = based.get(field) != server.get(field)
        diff[field] = entry
    return {
        "server_version": current.version,
        "diff": diff,
        "server": plan.properties(current.properties),
    }
