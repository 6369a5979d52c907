"""存量资产 over HTTP, the register's lifecycle: an asset's status history, and a move to its next
status by investment staff (checked against the allowed moves and the version read)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from api.deps import read_engine, require_role
from geo.assets.lifecycle import history, move
from geo.models.idle_assets import ASSET_STATUSES
from geo.policy.district_scope import must_see_row
from geo.policy.roles import Viewer

router = APIRouter(tags=["idle assets 存量资产"])
STAFF = require_role("investment", "admin")
READERS = require_role("investment", "admin", "planner")


class StatusMove(BaseModel):
    model_config = {"extra": "forbid"}
    status: str = Field(..., description=f"one of {', '.join(ASSET_STATUSES)}", max_length=16)
    note: str | None = Field(None, max_length=2000)
    version: int | None = Field(None, description="the asset's version as read (optional)")


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


@router.get("/assets/{asset_id}/history", summary="An asset's status and every change of it")
def asset_history(request: Request, asset_id: int, who: Viewer = Depends(READERS)):
    with read_engine(request).connect() as conn:
        must_see_row(conn, who, "assets", asset_id, f"asset {asset_id}")  # another district's
        return _json(history(conn, asset_id))


@router.post("/assets/{asset_id}/status", summary="Move an asset to its next status")
def asset_status(
    request: Request,
    asset_id: int,
    body: Annotated[StatusMove, Body()],
    who: Viewer = Depends(STAFF),
):
    with request.app.state.engine.begin() as conn:
        must_see_row(conn, who, "assets", asset_id, f"asset {asset_id}")
        return _json(move(conn, asset_id, body.status, who.username, body.note, body.version))
