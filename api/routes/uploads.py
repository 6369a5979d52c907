"""Departmental ingest over HTTP: upload a file for a layer, read the quality reports.

``POST /layers/{layer_id}/ingest`` takes ``multipart/form-data`` with ``file``, ``dept`` and an
optional ``crs``; only administrators may ingest, and the caller is checked before a byte of the
body is read (the form is parsed in the handler, not by FastAPI ahead of the dependencies). The
body's size is limited by ``api.limits`` (``ONEMAP_MAX_UPLOAD_BYTES``, 413). The ingest runs in a
worker thread in one transaction; a file that fails as a whole is a 400 and changes nothing.

Thin: ``layers.ingest`` does the work, ``layers.quality`` keeps the reports.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.engine import Connection, Engine
from starlette.datastructures import UploadFile

from api.deps import Read, require_city_role
from api.html import base_url, render
from geo.database import transaction
from geo.errors import BadRequest, NotFound
from geo.policy.roles import Viewer
from geo.text import text_problem
from layers import departments, quality
from layers.catalogue import get_layer
from layers.declaration import LAYER_ID
from layers.ingest import STAGES, ingest
from layers.quality import KIND_ZH

router = APIRouter(tags=["departmental ingest 部门数据入库"])

_MULTIPART = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "dept"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "GeoJSON, zipped Shapefile, GeoPackage or CSV",
                        },
                        "dept": {"type": "string", "description": "The department handing it over"},
                        "crs": {
                            "type": "string",
                            "description": "Override the file's CRS: EPSG:xxxx, gcj02 or bd09",
                        },
                    },
                }
            }
        },
    }
}


def _json(body, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def _safe_name(name: str | None) -> str:
    """The upload's base name, with only the characters a file name needs."""
    base = Path((name or "upload").replace("\\", "/")).name
    cleaned = re.sub(r"[^\w.\-]+", "_", base).strip("._") or "upload"
    return cleaned[-120:]


def _run(
    engine: Engine,
    path: Path,
    layer_id: str,
    dept: str,
    crs: str | None,
    name: str,
    who: Viewer,
    metric_srid: int,
    timeout_ms: int,
):
    with transaction(engine, timeout_ms) as conn:
        return ingest(
            conn, path, layer_id, dept, crs, file_name=name, viewer=who, metric_srid=metric_srid
        )


@router.post(
    "/layers/{layer_id}/ingest",
    status_code=201,
    summary="Ingest a departmental file into a declared layer (administrators)",
    openapi_extra=_MULTIPART,
    responses={201: {"description": "The quality report; Location names it"}},
)
async def ingest_upload(
    request: Request, layer_id: str, who: Viewer = Depends(require_city_role("admin"))
):
    if not LAYER_ID.fullmatch(layer_id):
        raise BadRequest(f"'{layer_id}' is not a layer id: lower-case letters, digits and _")
    # malformed multipart is starlette's 400; a body over the limit is api.limits' 413
    form = await request.form(max_files=1, max_fields=10)
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise BadRequest(
                "send multipart/form-data with a 'file' part (the departmental file), "
                "'dept' and optionally 'crs'",
            )
        dept = form.get("dept")
        if not isinstance(dept, str) or not dept.strip():
            raise BadRequest("say which department hands the file over: form field 'dept'")
        crs = form.get("crs")
        crs = crs.strip() if isinstance(crs, str) and crs.strip() else None
        original = Path((upload.filename or "upload").replace("\\", "/")).name
        with tempfile.TemporaryDirectory(prefix="onemap-upload-") as folder:
            path = Path(folder) / _safe_name(upload.filename)
            with path.open("wb") as out:
                await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1 << 20)
            report = await run_in_threadpool(
                _run,
                request.app.state.engine,
                path,
                layer_id,
                dept.strip(),
                crs,
                original,
                who,
                request.app.state.settings.spatial.metric_srid,
                request.app.state.settings.limits.ingest_timeout_ms,
            )
    finally:
        await form.close()
    location = str(request.url_for("ingest_report", report_id=str(report.id)))
    return _json(report.to_dict(), 201, {"Location": location})


@router.post(
    "/layers",
    status_code=201,
    summary="Declare a departmental layer from its TOML declaration (administrators)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/toml": {"schema": {"type": "string"}}},
        }
    },
)
async def declare_layer(request: Request, who: Viewer = Depends(require_city_role("admin"))):
    """The body is the layer's TOML declaration (as ``onemap layers declare`` takes it); a bad
    one is a 400 naming the line and the field, and changes nothing."""
    raw = await request.body()
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("send the declaration as UTF-8 TOML text") from exc
    problem = text_problem(source)
    if problem:
        raise BadRequest(f"the declaration {problem}")
    with transaction(
        request.app.state.engine, request.app.state.settings.limits.write_timeout_ms
    ) as conn:
        layer = await run_in_threadpool(departments.declare, conn, source, "the declaration", who)
    location = f"{base_url(request)}/collections/{layer.id}"
    body = {
        "id": layer.id,
        "title_zh": layer.title_zh,
        "fields": [f.name for f in layer.fields],
        "links": [{"rel": "collection", "href": location}],
    }
    return _json(body, 201, {"Location": location})


def _visible(conn: Connection, layer_id: str, who: Viewer) -> bool:
    """Reports of a layer are shown to whoever may see the layer listed (admins always)."""
    if who.role == "admin":
        return True
    try:
        get_layer(conn, layer_id, who)
        return True
    except NotFound:
        return False


@router.get("/layers/{layer_id}/reports", summary="A layer's ingest reports, newest first")
def layer_reports(layer_id: str, r: Read, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
    request, conn, who, html = r.request, r.conn, r.who, r.html
    known = departments.find(layer_id, conn) is not None
    if not _visible(conn, layer_id, who) or not (known or quality.for_layer(conn, layer_id, 1)):
        raise NotFound(f"no departmental layer '{layer_id}' that you may see")
    reports = quality.for_layer(conn, layer_id, limit)
    root = base_url(request)
    for report in reports:
        report["links"] = [{"rel": "self", "href": f"{root}/ingest/reports/{report['id']}"}]
    if html:
        return render("ingest_reports.html", request, layer_id=layer_id, reports=reports)
    return _json({"layer": layer_id, "reports": reports})


@router.get(
    "/ingest/reports/{report_id}",
    name="ingest_report",
    summary="One ingest's quality report: counts, each repaired/rejected row and why",
)
def ingest_report(report_id: int, r: Read):
    report = quality.get(r.conn, report_id)
    if report is None or not _visible(r.conn, report["layer_id"], r.who):
        raise NotFound(f"no ingest report {report_id} that you may see")
    if r.html:
        located = {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "id": i["row"],
                    "geometry": {"type": "Point", "coordinates": [i["lon"], i["lat"]]},
                    "properties": {"行 row": i["row"], KIND_ZH[i["kind"]]: i["reason"]},
                }
                for i in report["issues"]
                if i.get("lon") is not None
            ],
        }
        timings = [(k, report["timings"][k]) for k in (*STAGES, "total") if k in report["timings"]]
        return render(
            "ingest_report.html",
            r.request,
            report=report,
            kind_zh=KIND_ZH,
            located=located,
            timings=timings,
        )
    return _json(report)
