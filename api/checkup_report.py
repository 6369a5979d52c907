"""The check-up report a planner can hand to a leader: the summary coloured by status, a map per
indicator by community (failing areas outlined), H3 maps where a surface reads better, the change
since an earlier run, and each indicator's method and standard.

The same page is served by the app (its scripts from ``/static``, as the pages' CSP asks) and
written as one file by ``onemap checkup report`` (Leaflet and the drawing script inside the file,
so that it opens with no network at all).
"""

from __future__ import annotations

import json

import shapely
from sqlalchemy.engine import Connection

from api.html import STATIC, local_time, template
from geo.checkup.compare import compare
from geo.checkup.engine import summarise
from geo.checkup.results import area_shapes, indicator_results

#: the level each indicator is mapped at, and the surface maps drawn beside it
MAP_LEVEL = "community"
H3_MAPS = {"dense_land_area": "h3_9", "park_radius_coverage": "h3_8", "fire_5min_coverage": "h3_8"}
SIMPLIFY = 0.0002  # degrees (about 20 m): enough for a district map, a fraction of the bytes


def area_collection(conn: Connection, run: int, indicator: str, level: str) -> dict:
    """One indicator's areas of ``level`` as GeoJSON (simplified shapes, value, pass or fail)."""
    found = indicator_results(conn, run, indicator, level)
    areas = found["areas"]
    shapes = area_shapes(conn, level, [a["area_code"] for a in areas])
    features = []
    for a in areas:
        shape = shapes.get(a["area_code"])
        if shape is None:
            continue
        features.append(
            {
                "type": "Feature",
                "geometry": shapely.geometry.mapping(shapely.simplify(shape, SIMPLIFY)),
                "properties": {
                    "code": a["area_code"],
                    "name": a["area_name"] or a["area_code"],
                    "value": a["value"],
                    "passed": a["passed"],
                },
            }
        )
    return {
        "type": "FeatureCollection",
        "features": features,
        "run": run,
        "indicator": found["indicator"],
    }


def report_data(conn: Connection, run: int, base: int | None = None) -> dict:
    summary = summarise(conn, run)
    maps = []
    for item in summary["indicators"]:
        maps.append(
            {
                "id": item["id"],
                "level": MAP_LEVEL if item["id"] != "life_circle_completeness" else "community",
                "title": f"{item['name_zh']} · 按社区 by community",
                "unit": item["unit"],
                "data": area_collection(conn, run, item["id"], MAP_LEVEL),
            }
        )
        if item["id"] in H3_MAPS:
            level = H3_MAPS[item["id"]]
            maps.append(
                {
                    "id": f"{item['id']}-{level}",
                    "level": level,
                    "title": f"{item['name_zh']} · H3 {level[-1]}级网格 cells",
                    "unit": item["unit"],
                    "data": area_collection(conn, run, item["id"], level),
                }
            )
    change = compare(conn, base, run, "district") if base else None
    return {"summary": summary, "maps": maps, "change": change}


def render_report(conn: Connection, run: int, base: int | None = None, served: bool = False) -> str:
    """The report page; ``served``: scripts from the app, else everything inside the file."""
    data = report_data(conn, run, base)
    inline = None
    if not served:
        inline = {
            "leaflet_css": (STATIC / "vendor/leaflet/leaflet.css").read_text(encoding="utf-8"),
            "leaflet_js": (STATIC / "vendor/leaflet/leaflet.js").read_text(encoding="utf-8"),
            "report_js": (STATIC / "onemap-checkup.js").read_text(encoding="utf-8"),
            "css": (STATIC / "onemap.css").read_text(encoding="utf-8"),
        }
    payload = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
    return template("checkup_report.html").render(
        summary=data["summary"],
        change=data["change"],
        maps=data["maps"],
        payload=payload,
        inline=inline,
        local_time=local_time,
    )
