"""An asset's status lifecycle (entered → promoted → negotiating → revitalised, or withdrawn):
which moves are allowed, and a move made with who and when kept in the status history, in the
caller's transaction, against the version the caller read."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import Conflict, NotFound, Stale
from geo.models.idle_assets import ASSET_STATUSES

#: status → the statuses it may move to (a withdrawn asset may be entered again; a revitalised
#: one is done)
MOVES = {
    "entered": ("promoted", "withdrawn"),
    "promoted": ("negotiating", "withdrawn", "entered"),
    "negotiating": ("revitalised", "promoted", "withdrawn"),
    "revitalised": (),
    "withdrawn": ("entered",),
}
STATUS_ZH = {
    "entered": "已入库",
    "promoted": "公开推介",
    "negotiating": "洽谈中",
    "revitalised": "已盘活",
    "withdrawn": "已撤回",
}


def move(
    conn: Connection,
    asset_id: int,
    to: str,
    by: str,
    note: str | None = None,
    version: int | None = None,
    when: datetime | None = None,
) -> dict:
    """Move an asset to status ``to``; the asset's row and a history row change together."""
    if to not in ASSET_STATUSES:
        raise Conflict(f"unknown status {to!r}: one of {', '.join(ASSET_STATUSES)}")
    row = conn.execute(
        text("SELECT id, code, status, version FROM assets WHERE id = :id FOR UPDATE"),
        {"id": asset_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"no asset {asset_id}")
    if version is not None and version != row.version:
        raise Stale(
            f"asset {row.code} is at version {row.version}, not {version}: read it again "
            "and decide on its current status"
        )
    if to not in MOVES[row.status]:
        allowed = ", ".join(f"{s} ({STATUS_ZH[s]})" for s in MOVES[row.status]) or "none"
        raise Conflict(
            f"asset {row.code} is {row.status} ({STATUS_ZH[row.status]}); it cannot move to "
            f"{to} ({STATUS_ZH[to]}). Allowed: {allowed}"
        )
    when = when or datetime.now(UTC)
    conn.execute(text("UPDATE assets SET status = :to WHERE id = :id"), {"to": to, "id": asset_id})
    conn.execute(
        text("""INSERT INTO asset_status_history (asset_id, status, changed_at, changed_by, note)
                VALUES (:id, :to, :at, :by, :note)"""),
        {"id": asset_id, "to": to, "at": when, "by": by[:50], "note": note},
    )
    return history(conn, asset_id)


def history(conn: Connection, asset_id: int) -> dict:
    """The asset's current status and every change, oldest first."""
    row = conn.execute(
        text("SELECT id, code, name, status, version FROM assets WHERE id = :id"),
        {"id": asset_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"no asset {asset_id}")
    steps = conn.execute(
        text("""SELECT status, changed_at, changed_by, note FROM asset_status_history
                WHERE asset_id = :id ORDER BY changed_at, id"""),
        {"id": asset_id},
    ).all()
    return {
        "id": row.id,
        "code": row.code,
        "name": row.name,
        "status": row.status,
        "status_zh": STATUS_ZH[row.status],
        "version": row.version,
        "next": list(MOVES[row.status]),
        "history": [
            {
                "status": s.status,
                "status_zh": STATUS_ZH[s.status],
                "changed_at": s.changed_at.isoformat(),
                "changed_by": s.changed_by,
                "note": s.note,
            }
            for s in steps
        ],
    }
