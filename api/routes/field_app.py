"""The grid worker's mobile web app (网格员移动端) at ``/field``: the app shell, its service worker
and its web manifest. Everything else the app does goes through the public records API with the
worker's own token (``/records/...``, ``/records/sync``, ``/records/reviews``), so it sees exactly
what the API lets a grid worker see.

Only three fixed paths are claimed here (``/field``, ``/field/sw.js``,
``/field/manifest.webmanifest``): ``/field/patrols…``, ``/field/verify`` and ``/field/freshness``
belong to other routers.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from functools import lru_cache
from urllib.parse import urlsplit

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from api.html import STATIC, base_url, render
from geo.models import access_of
from geo.records import TYPES
from layers.vocabulary import FIELD_ZH, VALUE_ZH

router = APIRouter(tags=["网格员移动端 field app"], include_in_schema=False)

FIELD_STATIC = STATIC / "field"
#: what the service worker keeps for offline use: the shell, never an API answer
SHELL = (
    "/field",
    "/static/field/app.js",
    "/static/field/field.css",
    "/static/field/icon.svg",
    "/field/manifest.webmanifest",
    "/static/vendor/leaflet/leaflet.js",
    "/static/vendor/leaflet/leaflet.css",
)
#: the record types the app edits, and the ones it only shows on the map and in search
EDITED = ("houses", "residents", "organisations", "facilities")
SHOWN = ("buildings", "addresses")
#: fields the forms leave out (references the app sets from where the worker is)
NOT_IN_FORMS = frozenset({"building_id", "house_id", "address_id", "verified_at", "verified_by"})
#: titles that differ by type from the shared vocabulary
TITLES = {("residents", "name"): "姓名", ("organisations", "name"): "单位名称"}


def _kind(column) -> str:
    try:
        python = column.type.python_type
    except NotImplementedError:  # pragma: no cover
        return "text"
    if python is bool:
        return "bool"
    if python is int:
        return "int"
    if python in (float, Decimal):
        return "number"
    if python is date:
        return "date"
    if python is list:
        return "list"
    return "text"


def _choices(table: str, column: str) -> list[str]:
    """Enumerated values from the table's ``IN (...)`` check, else from the vocabulary."""
    import re

    from geo.models import Base

    for constraint in Base.metadata.tables[table].constraints:
        sql = str(getattr(constraint, "sqltext", ""))
        match = re.fullmatch(rf"\s*{column} IN \((.*)\)\s*", sql)
        if match:
            return re.findall(r"'([^']*)'", match.group(1))
    return sorted(VALUE_ZH.get(column, {}))


@lru_cache(maxsize=1)
def app_config() -> dict:
    """What the app needs to draw its forms: each type's fields, titles, choices, personal fields."""
    types = {}
    for name in (*SHOWN, *EDITED):
        rtype = TYPES[name]
        personal = access_of(name).personal
        fields = []
        for field in rtype.editable:
            column = rtype.table.c[field]
            fields.append(
                {
                    "name": field,
                    "title": TITLES.get((name, field)) or FIELD_ZH.get(field, field),
                    "kind": _kind(column),
                    "required": field in rtype.required,
                    "nullable": bool(column.nullable),
                    "max_length": getattr(column.type, "length", None),
                    "choices": _choices(name, field) if field != "name" else [],
                    "personal": field in personal,
                    "in_form": field not in NOT_IN_FORMS,
                }
            )
        types[name] = {
            "title": rtype.title_zh,
            "geometry": rtype.geometry,
            "parent": rtype.parent,
            "required": list(rtype.required),
            "edited": name in EDITED,
            "fields": fields,
        }
    return {"types": types, "titles": FIELD_ZH, "values": VALUE_ZH}


def _shell_version() -> str:
    """A hash of the shell's files: a new service worker (and a fresh cache) when they change."""
    digest = hashlib.sha256()
    for path in sorted(FIELD_STATIC.iterdir()):
        if path.is_file():
            digest.update(path.name.encode() + path.read_bytes())
    digest.update((STATIC.parent / "templates" / "field.html").read_bytes())
    return digest.hexdigest()[:16]


@router.get("/field", summary="The grid worker's mobile app (网格员移动端)")
def field_app(request: Request):
    page = render("field.html", request, config=app_config())
    page.headers["Cache-Control"] = "no-cache"
    return page


@router.get("/field/sw.js", summary="The field app's service worker")
def service_worker(request: Request):
    root = base_url(request)
    script = (FIELD_STATIC / "sw.js").read_text(encoding="utf-8")
    script = script.replace("__SHELL_VERSION__", _shell_version()).replace(
        "__SHELL_FILES__", orjson.dumps([root + p for p in SHELL]).decode()
    )
    return Response(
        script,
        media_type="application/javascript",
        headers={
            "Service-Worker-Allowed": urlsplit(root).path + "/field",
            "Cache-Control": "no-cache",
        },
    )


@router.get("/field/manifest.webmanifest", summary="The field app's web manifest")
def manifest(request: Request):
    root = base_url(request)
    body = {
        "name": "一张图 网格员 onemap field",
        "short_name": "网格员",
        "lang": "zh-CN",
        "start_url": f"{root}/field",
        "scope": f"{root}/field",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#ffffff",
        "theme_color": "#0b4f6c",
        "icons": [
            {
                "src": f"{root}/static/field/icon.svg",
                "sizes": "any",
                "type": "image/svg+xml",
            }
        ],
    }
    return Response(orjson.dumps(body), media_type="application/manifest+json")
