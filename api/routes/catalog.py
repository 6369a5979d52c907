"""``/catalog``: the layer catalogue ("one table", 一张表) as JSON and as a readable page.

Every layer the caller may know of (closed layers, 禁止开放, are hidden from anonymous callers):
titles, department, description, geometry type, CRS of origin, update frequency, last loaded,
feature count, extent, fields with types and which are personal data (and how each is masked),
sharing level between departments and opening level to the public (国发〔2016〕51号).
Internal fields are listed only to roles that may see them. Thin: ``layers.features`` reads the
catalogue, ``layers.departments`` adds the declared Chinese field titles.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from api.deps import Read
from api.html import base_url, render
from api.routes.raster_tiles import available
from layers import departments
from layers import features as F
from layers.catalogue import OPENING_ZH, SHARING_ZH, Layer, list_layers
from layers.vocabulary import field_title

router = APIRouter(tags=["catalogue 资源目录"])
FREQUENCY_ZH = {
    "daily": "每日",
    "weekly": "每周",
    "monthly": "每月",
    "quarterly": "每季度",
    "yearly": "每年",
    "on_change": "随时",
}


def _entry(root: str, layer: Layer, columns: tuple[str, ...], titles: dict[str, str]) -> dict:
    """A layer's catalogue entry, listing only the columns the caller's read plan serves."""
    fields = []
    for f in layer.columns:
        if f["name"] not in columns:
            continue
        fields.append(
            {
                "name": f["name"],
                "title_zh": field_title(f["name"], titles),
                "type": f.get("type"),
                "db_type": f.get("db_type"),
                "nullable": f.get("nullable"),
                "geometry_type": f.get("geometry_type"),
                "personal": layer.personal.get(f["name"]),
                "internal": f["name"] in layer.internal,
            }
        )
    declared = bool(titles) or layer.table.startswith("layers.")
    links = [
        {"rel": "collection", "href": f"{root}/collections/{layer.id}"},
        {"rel": "items", "href": f"{root}/collections/{layer.id}/items"},
    ]
    if declared:
        links.append({"rel": "reports", "href": f"{root}/layers/{layer.id}/reports"})
    return {
        "id": layer.id,
        "title_zh": layer.title_zh,
        "title_en": layer.title_en,
        "department": layer.department,
        "description": layer.description,
        "departmental": declared,
        "geometry_type": layer.geometry_type,
        "source_crs": layer.source_crs,
        "update_frequency": layer.update_frequency,
        "update_frequency_zh": FREQUENCY_ZH.get(layer.update_frequency or ""),
        "last_loaded": layer.last_loaded.isoformat() if layer.last_loaded else None,
        "feature_count": layer.feature_count,
        "extent": layer.extent,
        "fields": fields,
        "personal_fields": {
            name: kind
            for name, kind in layer.personal.items()
            if any(f["name"] == name for f in fields)
        },
        "sharing_level": layer.sharing_level,
        "sharing_level_zh": SHARING_ZH.get(layer.sharing_level),
        "opening_level": layer.opening_level,
        "opening_level_zh": OPENING_ZH.get(layer.opening_level),
        "links": links,
    }


@router.get("/catalog", summary="The layer catalogue (一张表): every layer you may know of")
def catalog(r: Read):
    root = base_url(r.request)
    entries = []
    for layer in list_layers(r.conn, r.who):
        plan = layer.plan(r.who)
        titles = departments.field_titles(layer.id, r.conn)
        entries.append(_entry(root, F.as_seen_by(r.conn, layer, plan), plan.columns, titles))
    if r.html:
        return render("catalog.html", r.request, entries=entries, rasters=available(r.request))
    body = {
        "title": "资源目录 Layer catalogue",
        "numberOfLayers": len(entries),
        "layers": entries,
        "rasters": available(r.request),
        "links": [
            {"rel": "self", "type": "application/json", "href": f"{root}/catalog?f=json"},
            {"rel": "alternate", "type": "text/html", "href": f"{root}/catalog?f=html"},
        ],
    }
    return Response(orjson.dumps(body), media_type="application/json")
