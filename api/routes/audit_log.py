"""``/audit``: the audit log, for administrators (JSON, or a table with f=html)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from api.deps import Format, read_engine, require_role
from api.html import render, wants_html
from geo.policy import audit
from geo.policy.roles import Viewer

router = APIRouter(tags=["audit"])


@router.get("/audit", summary="Every write and every unmasked personal read (administrators only)")
def audit_log(
    request: Request,
    which: Annotated[audit.AuditQuery, Depends()],
    who: Viewer = Depends(require_role("admin")),
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10**12)] = 0,
    f: Format = None,
):
    with read_engine(request).connect() as conn:
        entries, total = audit.query(conn, which, limit, offset, district=who.district)
    if wants_html(request, f):
        return render("audit.html", request, entries=entries, total=total)
    return Response(
        orjson.dumps({"numberMatched": total, "entries": entries}, default=str),
        media_type="application/json",
    )
