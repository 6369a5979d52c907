"""Every version of a record, and restoring a past one as a new version."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import NotFound
from geo.policy import audit
from geo.policy.plan import ReadPlan
from geo.policy.roles import Viewer
from geo.records import edits, store
from geo.records.types import Change, EditRules, RecordType


def versions(
    conn: Connection, viewer: Viewer, rtype: RecordType, record_id: int, plan: ReadPlan
) -> list[dict]:
    """The record's versions, newest first: who, when, what changed, and the state after, each
    as the caller's read plan shows it (an unmasked read is audited)."""
    store.require_scope(viewer, write=False)
    rows = (
        conn.execute(
            text("""SELECT version, action, actor, role, at, changed, before, after, review_id FROM record_history
                WHERE record_type = :t AND record_id = :id ORDER BY id DESC"""),
            {"t": rtype.name, "id": record_id},
        )
        .mappings()
        .all()
    )
    if not rows:
        raise NotFound(f"no history for {rtype.name} {record_id}")
    last = rows[0]["after"] or rows[0]["before"]
    store.check_owned(
        conn,
        viewer,
        store.Record(rtype.name, record_id, 0, last["properties"], last["geometry"]),
        write=False,
    )
    if plan.audited:
        audit.record(
            conn, viewer, "read_personal", rtype.name, record_id, plan.purpose, {"history": True}
        )
    out = []
    for r in rows:
        state = r["after"]
        out.append(
            {
                "version": r["version"],
                "action": r["action"],
                "actor": r["actor"],
                "role": r["role"],
                "at": r["at"].isoformat(),
                "changed": list(r["changed"]),
                "review_id": r["review_id"],
                "properties": plan.properties(state["properties"]) if state else None,
                "geometry": state["geometry"] if state else None,
            }
        )
    return out


def restore(
    conn: Connection,
    viewer: Viewer,
    rtype: RecordType,
    record_id: int,
    version: int,
    if_match: int | None,
    rules: EditRules,
) -> edits.Outcome:
    """Bring back the state a record had at ``version``, as a new version (history goes on).

    The caller's right to edit the record is checked first, so that another grid's record is
    refused as such (403), whatever versions it has."""
    store.check_owned(conn, viewer, store.load(conn, rtype, record_id), write=True)
    row = conn.execute(
        text("""SELECT after FROM record_history WHERE record_type = :t AND record_id = :id AND version = :v
                AND after IS NOT NULL ORDER BY id DESC LIMIT 1"""),
        {"t": rtype.name, "id": record_id, "v": version},
    ).scalar()
    if row is None:
        raise NotFound(f"{rtype.name} {record_id} has no version {version} to restore")
    props = {k: v for k, v in row["properties"].items() if k in rtype.editable}
    geometry = row["geometry"] if rtype.geometry is not None else None
    change = Change(rtype, "restore", record_id, if_match, props, geometry)
    return edits.submit(conn, viewer, change, rules)
