"""The audit log (审计日志): every write and every unmasked read of personal data.

Entries are written in the same transaction as the act they record, so an act that rolls back
leaves no entry, and the database refuses to change or delete entries (append-only trigger).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.policy.roles import Viewer


def record(
    conn: Connection,
    viewer: Viewer,
    action: str,
    target_type: str,
    target_id: str | int | None = None,
    purpose: str | None = None,
    detail: dict | None = None,
    status: int | None = None,
) -> None:
    conn.execute(
        text("""INSERT INTO audit_log (actor, role, action, target_type, target_id, purpose, detail, status)
                VALUES (:actor, :role, :action, :type, :id, :purpose, CAST(:detail AS jsonb), :status)"""),
        {
            "actor": viewer.username,
            "role": viewer.role,
            "action": action,
            "type": target_type,
            "id": None if target_id is None else str(target_id),
            "purpose": purpose,
            "detail": json.dumps(detail or {}, ensure_ascii=False, default=str),
            "status": status,
        },
    )


@dataclass(frozen=True)
class AuditQuery:
    """Which entries to list: each given field must match (``since``/``until`` bound the time)."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def query(
    conn: Connection,
    which: AuditQuery,
    limit: int = 100,
    offset: int = 0,
    district: str | None = None,
) -> tuple[list[dict], int]:
    """Entries newest first, filtered; and how many match. ``district``: an administrator bound
    to a district sees what their district's own users did, and nothing of other districts' or
    whole-city users' (an entry names its actor; a target's district is not kept with it)."""
    where = """(CAST(:district AS text) IS NULL
            OR actor IN (SELECT username FROM users WHERE district_code = :district))
        AND (CAST(:actor AS text) IS NULL OR actor = :actor)
        AND (CAST(:action AS text) IS NULL OR action = :action)
        AND (CAST(:target_type AS text) IS NULL OR target_type = :target_type)
        AND (CAST(:target_id AS text) IS NULL OR target_id = :target_id)
        AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
        AND (CAST(:until AS timestamptz) IS NULL OR at <= :until)"""
    params = asdict(which) | {"district": district}
    total = conn.execute(text(f"SELECT count(*) FROM audit_log WHERE {where}"), params).scalar_one()
    rows = conn.execute(
        text(f"""SELECT id, at, actor, role, action, target_type, target_id, purpose, detail, status
                 FROM audit_log WHERE {where} ORDER BY id DESC LIMIT :limit OFFSET :offset"""),
        {**params, "limit": limit, "offset": offset},
    ).mappings()
    return [dict(r) for r in rows], int(total)
