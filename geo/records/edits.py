"""One edit, start to end: applied at once, or held for review when a grid worker changes a record
type that needs a community reviewer's approval (residents and houses by default)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import Conflict, Forbidden, NotFound, OnemapError
from geo.policy import audit
from geo.policy.access import may_review
from geo.policy.district_scope import sees_code
from geo.policy.roles import Viewer
from geo.records import store
from geo.records.types import Change, EditRules, RecordType, record_type


@dataclass
class Outcome:
    status: str  # applied | pending
    record: store.Record | None
    review_id: int | None = None


def needs_review(viewer: Viewer, rtype: RecordType, rules: EditRules) -> bool:
    return viewer.role == "grid_worker" and rtype.name in rules.review_types


def submit(conn: Connection, viewer: Viewer, change: Change, rules: EditRules) -> Outcome:
    """Apply the change, or check it fully and hold it for review.

    A grid worker's change that collides with a record they cannot see on a personal field (an
    identity number registered elsewhere) is held for review like any other: answering "conflict"
    would tell them that such a person exists somewhere in the district."""
    try:
        if not needs_review(viewer, change.rtype, rules):
            return Outcome("applied", store.apply(conn, viewer, change, rules))
        # a dry run in a savepoint: the change must be valid now; the reviewer sees a valid change
        dry = conn.begin_nested()
        try:
            after = store.apply(conn, viewer, change, rules)
        finally:
            dry.rollback()
    except store.PersonalConflict:
        if viewer.role != "grid_worker":
            raise
        after = None
    review_id = conn.execute(
        text("""INSERT INTO record_reviews (record_type, record_id, action, base_version, payload, grid_code,
                                            submitted_by)
                VALUES (:t, :id, :a, :v, CAST(:p AS jsonb), :g, :u) RETURNING id"""),
        {
            "t": change.rtype.name,
            "id": change.record_id,
            "a": change.action,
            "v": change.if_match,
            "p": json.dumps(
                {"properties": change.properties, "geometry": change.geometry}, ensure_ascii=False
            ),
            "g": after.properties.get("grid_code") if after else None,
            "u": viewer.username,
        },
    ).scalar_one()
    audit.record(
        conn,
        viewer,
        "submit_review",
        change.rtype.name,
        change.record_id,
        detail={"review": review_id, "action": change.action},
    )
    return Outcome("pending", None, review_id)


def list_reviews(
    conn: Connection,
    viewer: Viewer,
    status: str = "pending",
    limit: int = 100,
    purpose: str | None = None,
) -> list[dict]:
    """Reviewers see every review; a grid worker sees their own submissions. The payloads are
    shown as the reader's plan shows the record type: masked, unless a purpose is stated by a
    role that may see them raw (then audited, as any unmasked read)."""
    if not may_review(viewer) and viewer.role != "grid_worker":
        raise Forbidden(f"your role '{viewer.role}' has no reviews")
    mine = None if may_review(viewer) else viewer.username
    rows = conn.execute(
        text("""SELECT id, record_type, record_id, action, base_version, payload, grid_code, submitted_by,
                       submitted_at, status, reviewed_by, reviewed_at, note, result_version
                FROM record_reviews
                WHERE status = :s AND (CAST(:mine AS text) IS NULL OR submitted_by = :mine)
                  AND (CAST(:district AS text) IS NULL OR left(grid_code, 6) = :district)
                ORDER BY id LIMIT :limit"""),
        {"s": status, "mine": mine, "limit": limit, "district": viewer.district},
    ).mappings()
    out, raw = [], []
    for r in rows:  # the payload as the reader may see it: masked, like every other read
        review = dict(r)
        payload = dict(review["payload"] or {})
        if isinstance(payload.get("properties"), dict):
            plan = record_type(review["record_type"]).plan(viewer, purpose)
            props = dict(payload["properties"])
            sent_grid = "grid_code" in props
            props.setdefault("grid_code", review["grid_code"])  # raw only in the reader's grids
            shown = plan.properties(props)
            if not sent_grid:
                shown.pop("grid_code", None)
            payload["properties"] = shown
            if plan.audited:
                raw.append(review["id"])
        review["payload"] = payload
        out.append(review)
    if raw:
        audit.record(conn, viewer, "read_personal", "record_reviews", None, purpose, {"ids": raw})
    return out


def decide(
    conn: Connection,
    reviewer: Viewer,
    review_id: int,
    approve: bool,
    note: str | None = None,
    rules: EditRules = EditRules(),
) -> dict:
    """Approve (apply now, as the submitter, if the record has not moved on) or reject a change."""
    if not may_review(reviewer):
        raise Forbidden(f"your role '{reviewer.role}' may not review changes")
    row = (
        conn.execute(
            text("SELECT * FROM record_reviews WHERE id = :id FOR UPDATE"), {"id": review_id}
        )
        .mappings()
        .first()
    )
    if row is None or not sees_code(reviewer, row["grid_code"]):  # another district's: missing
        raise NotFound(f"no review {review_id}")
    if row["status"] != "pending":
        raise Conflict(f"review {review_id} was {row['status']} already")
    version = None
    status = "rejected"
    if approve:
        submitter = Viewer(username=row["submitted_by"], role="grid_worker")
        payload = row["payload"]
        try:
            with conn.begin_nested():
                change = Change(
                    record_type(row["record_type"]),
                    row["action"],
                    row["record_id"],
                    row["base_version"],
                    payload.get("properties"),
                    payload.get("geometry"),
                )
                after = store.apply(
                    conn, reviewer, change, rules, review_id=review_id, actor=submitter
                )
        except OnemapError as exc:  # the record moved on, or the change no longer fits: close it
            note = f"could not be applied: {exc.detail}"
            _close(conn, reviewer, review_id, "rejected", note, None)
            return {"id": review_id, "status": "rejected", "note": note, "refused": exc.kind}
        version = after.version if after else None
        status = "approved"
    _close(conn, reviewer, review_id, status, note, version)
    return {"id": review_id, "status": status, "result_version": version}


def _close(
    conn: Connection,
    reviewer: Viewer,
    review_id: int,
    status: str,
    note: str | None,
    version: int | None,
) -> None:
    conn.execute(
        text("""UPDATE record_reviews SET status = :s, reviewed_by = :r, reviewed_at = now(), note = :n,
                       result_version = :v WHERE id = :id"""),
        {"s": status, "r": reviewer.username, "n": note, "v": version, "id": review_id},
    )
    audit.record(
        conn,
        reviewer,
        "approve" if status == "approved" else "reject",
        "record_reviews",
        review_id,
        detail={"note": note},
    )
