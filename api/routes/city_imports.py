"""``POST /city/imports``: an administrator hands over a district as one zip (the manifest and
its files) and is answered with the import's quality report.

The caller is checked before the body is read; the body is limited like every upload
(``ONEMAP_MAX_UPLOAD_BYTES``, 413). The import runs in a worker thread in one transaction:
a loaded district answers 201 with the report; a refused one answers 422 (problem+json with the
report inside) and changes nothing. A browser asking for HTML gets the report's page.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from api.city_report import render as render_report
from api.deps import require_role
from api.html import CSP, wants_html
from geo.database import transaction
from geo.errors import Invalid, Unsupported
from geo.policy.roles import Viewer
from layers.basedata import bundle
from layers.basedata import manifest as manifests
from layers.basedata.importer import import_district

router = APIRouter(tags=["district import 辖区数据导入"])
ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")


class _Refused(Exception):
    def __init__(self, report):
        self.report = report


def _run(engine, manifest_path: Path, options: dict[str, bool], settings, who: Viewer):
    parsed = manifests.load(manifest_path)
    try:
        with transaction(engine, settings.limits.ingest_timeout_ms) as conn:
            report = import_district(
                conn,
                parsed,
                **options,
                metric_srid=settings.spatial.metric_srid,
                hash_key=settings.secrets.id_hash_key,
                viewer=who,
            )
            if not report.loaded:
                raise _Refused(report)  # rolls the transaction back
    except _Refused as refused:
        return refused.report
    return report


@router.post(
    "/city/imports",
    status_code=201,
    summary="Import a district from a zip of its manifest and files (administrators)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
    responses={
        201: {"description": "Loaded: the quality report"},
        422: {"description": "Refused, nothing changed: a problem with the report inside"},
    },
)
async def import_city(
    request: Request,
    who: Viewer = Depends(require_role("admin")),
    replace: Annotated[
        bool, Query(description="Swap out the district of the same code (or all, for another)")
    ] = False,
    beside: Annotated[bool, Query(description="Load it next to the districts loaded")] = False,
    allow_rejects: Annotated[bool, Query(description="Load the good rows anyway")] = False,
    f: Annotated[str | None, Query(description="html for the report's page")] = None,
):
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ZIP_TYPES:
        raise Unsupported(
            "send the district as a zip (Content-Type: application/zip) holding manifest.toml "
            "and the files it names"
        )
    settings = request.app.state.settings
    with tempfile.TemporaryDirectory(prefix="onemap-district-") as folder:
        archive = Path(folder) / "upload.zip"
        with archive.open("wb") as out:
            async for chunk in request.stream():
                out.write(chunk)
        unpacked = Path(folder) / "district"
        unpacked.mkdir()
        manifest_path = await run_in_threadpool(bundle.unpack, archive, unpacked)
        report = await run_in_threadpool(
            _run,
            request.app.state.engine,
            manifest_path,
            {"replace": replace, "beside": beside, "allow_rejects": allow_rejects},
            settings,
            who,
        )
    body = report.to_json()
    status = 201 if report.loaded else 422
    if wants_html(request, f):
        return HTMLResponse(
            render_report(body), status_code=status, headers={"Content-Security-Policy": CSP}
        )
    if report.loaded:
        return Response(orjson.dumps(body), 201, media_type="application/json")
    raise Invalid(report.summary(), report=body)
