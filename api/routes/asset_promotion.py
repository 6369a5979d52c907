"""存量资产招商推介 over HTTP: an asset's printable brochure, a view counted from the public map,
the internal statistics of views and revitalisation, and the asset's photos.

The public (anonymous, or a role that sees only promoted assets) reads promoted assets only; any
other asset answers 404 as a missing one does, so that what is not on offer is not even known to
exist. A public view is counted (a count, nothing about the viewer); an internal reader's is not.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from sqlalchemy.engine import make_url
from starlette.datastructures import UploadFile

from api.deps import Caller, Format, read_engine, require_role, writing_transaction
from api.html import render, wants_html
from geo.assets.photos import MAX_PHOTO_BYTES, list_photos, photo_path, save_photo
from geo.assets.promotion import brochure_facts, count_view, statistics
from geo.errors import BadRequest, NotFound
from geo.policy.district_scope import must_see_row, narrowed
from geo.policy.roles import Viewer

router = APIRouter(tags=["idle assets 存量资产"])
#: roles that see every asset, not only those on offer (the asset layer's own rows rule); their
#: views are work, not interest, and are not counted
INTERNAL = ("investment", "admin", "planner")
STAFF = require_role("investment", "admin")
READERS = require_role(*INTERNAL)
#: the contact a brochure gives: the investment office's public line, never the owner's contact
OFFICE = "区投资促进中心 · 政务服务便民热线 12345"
OFFICE_EN = "District investment promotion centre, government service hotline 12345"


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status, media_type="application/json")


def _internal(who: Viewer) -> bool:
    return who.role in INTERNAL


def _zone(request: Request) -> str:
    return request.app.state.settings.service.timezone


def _photo_folder(request: Request) -> Path:
    """This database's photo folder: one service may serve several databases on one disk."""
    database = make_url(request.app.state.engine.url).database or "onemap"
    return request.app.state.settings.service.photos / database


def _visible(conn, asset_id: int, who: Viewer) -> dict:
    """The asset's public facts, or 404 when the caller may not see it (not promoted, or in
    another district than theirs)."""
    must_see_row(conn, who, "assets", asset_id, f"asset {asset_id}")
    return brochure_facts(conn, asset_id, everything=_internal(who))


@router.get(
    "/assets/statistics",
    summary="Views, the status funnel and the revitalisation rate (investment, admin, planners)",
)
def asset_statistics(
    request: Request,
    f: Format = None,
    as_of: Annotated[date | None, Query(description="a day: statuses as of its end")] = None,
    district: Annotated[str | None, Query(description="only this district's (6 digits)")] = None,
    who: Viewer = Depends(READERS),
):
    with read_engine(request).connect() as conn:
        who = narrowed(conn, who, district)  # a bound user: their district's numbers only
        numbers = statistics(conn, as_of, _zone(request), district=who.district)
    if wants_html(request, f):
        most = max([d["views"] for d in numbers["views_per_day"]] + [1])
        top = max([a["views"] for a in numbers["most_viewed"]] + [1])
        reached = max([s["reached"] for s in numbers["funnel"]] + [1])
        return render(
            "asset_statistics.html",
            request,
            s=numbers,
            most_per_day=most,
            most_viewed=top,
            most_reached=reached,
        )
    return _json(numbers)


@router.get(
    "/assets/{asset_id}/brochure",
    summary="An asset's printable one-page brochure (HTML; the public: promoted assets only)",
    response_class=Response,
)
def asset_brochure(request: Request, asset_id: int, who: Caller):
    with writing_transaction(request) as conn:
        facts = _visible(conn, asset_id, who)
        photos = list_photos(conn, asset_id)
        if not _internal(who):
            count_view(conn, asset_id, "brochure", _zone(request))
    footprint = {"type": "Feature", "properties": {"name": facts["name"]}}
    footprint["geometry"] = orjson.loads(facts.pop("footprint"))
    return render(
        "asset_brochure.html",
        request,
        a=facts,
        photos=photos,
        footprint=orjson.dumps(footprint).decode(),
        office=OFFICE,
        office_en=OFFICE_EN,
    )


@router.post(
    "/assets/view/{asset_id}",
    status_code=204,
    summary="Count a view of a promoted asset opened on the public map (no sign-in)",
    response_class=Response,
)
def asset_viewed(request: Request, asset_id: int, who: Caller):
    with writing_transaction(request) as conn:
        if _internal(who):
            _visible(conn, asset_id, who)  # 404 for a missing asset, nothing counted
        elif not count_view(conn, asset_id, "map", _zone(request)):
            raise NotFound(f"no asset {asset_id} on public offer")
    return Response(status_code=204)


@router.post(
    "/assets/{asset_id}/photos",
    status_code=201,
    summary="Add a photo of an asset (investment staff, admin): JPEG, PNG or WebP, ≤ 10 MB",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "caption": {"type": "string", "maxLength": 200},
                        },
                    }
                }
            },
        }
    },
)
async def asset_photo_upload(request: Request, asset_id: int, who: Viewer = Depends(STAFF)):
    # the caller is checked before the body is read; the body's size is bounded by api.limits
    form = await request.form(max_files=1, max_fields=5)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest("send multipart/form-data with the image in a 'file' part")
        data = await upload.read(MAX_PHOTO_BYTES + 1)
        caption = form.get("caption")
        caption = caption if isinstance(caption, str) else None
        photo = await run_in_threadpool(
            _save, request, asset_id, data, upload.filename, who, caption
        )
    finally:
        await form.close()
    photo["url"] = str(request.url_for("asset_photo", asset_id=asset_id, photo_id=photo["id"]))
    return _json(photo, 201)


def _save(request: Request, asset_id: int, data: bytes, name, who: Viewer, caption) -> dict:
    with writing_transaction(request) as conn:
        must_see_row(conn, who, "assets", asset_id, f"asset {asset_id}")
        return save_photo(conn, _photo_folder(request), asset_id, data, name, who.username, caption)


@router.get("/assets/{asset_id}/photos", summary="An asset's photos (the public: promoted only)")
def asset_photos(request: Request, asset_id: int, who: Caller):
    with read_engine(request).connect() as conn:
        _visible(conn, asset_id, who)
        photos = list_photos(conn, asset_id, staff=who.role in ("investment", "admin"))
    for photo in photos:
        photo["url"] = str(request.url_for("asset_photo", asset_id=asset_id, photo_id=photo["id"]))
    return _json(photos)


@router.get(
    "/assets/{asset_id}/photos/{photo_id}",
    summary="One photo's image (the public: of promoted assets only)",
    response_class=FileResponse,
)
def asset_photo(request: Request, asset_id: int, photo_id: int, who: Caller):
    with read_engine(request).connect() as conn:
        _visible(conn, asset_id, who)
        path, media_type = photo_path(conn, _photo_folder(request), asset_id, photo_id)
    return FileResponse(
        path,
        media_type=media_type,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300"},
    )
