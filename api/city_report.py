"""The district import's quality report as one HTML page that needs nothing else: the map of
the problem rows is drawn here as SVG over the district's outline, so that the page the command
line writes opens from a USB stick on a machine with no network, and the page the service
answers needs no script."""

from __future__ import annotations

import math

from api.html import local_time, template
from layers.catalogue import BASE_LAYERS
from layers.vocabulary import field_title

COLOURS = {"rejected": "#b42318", "repaired": "#9a6700", "warning": "#7b8794"}
OUTCOME = {"rejected": "拒绝 rejected", "repaired": "修复 repaired", "warning": "提示 warning"}
ROWS_SHOWN = 500
#: each table's Chinese title (the catalogue's), and those of the two tables it does not list
TABLE_ZH = {layer.id: layer.title_zh for layer in BASE_LAYERS} | {
    "sensor_readings": "传感器读数",
    "asset_status_history": "资产状态变更",
}
MAP_WIDTH = 1000.0


def render(report: dict) -> str:
    """``report`` is ``ImportReport.to_json()``."""
    located = [
        i
        for t in report["tables"].values()
        for i in t["issues"]
        if i.get("lon") is not None and i.get("lat") is not None
    ][: ROWS_SHOWN * 4]
    outline = report.get("district_outline") or []
    lons = [p[0] for ring in outline for p in ring] + [i["lon"] for i in located]
    lats = [p[1] for ring in outline for p in ring] + [i["lat"] for i in located]
    page_map, points = None, []
    if located:
        west, east, south, north = min(lons), max(lons), min(lats), max(lats)
        squeeze = math.cos(math.radians((south + north) / 2))
        span_x = max((east - west) * squeeze, 1e-6)
        span_y = max(north - south, 1e-6)
        scale = MAP_WIDTH / span_x
        height = max(span_y * scale, 200.0)

        def xy(lon: float, lat: float) -> tuple[float, float]:
            return round((lon - west) * squeeze * scale, 1), round((north - lat) * scale, 1)

        page_map = {
            "width": MAP_WIDTH,
            "height": round(height, 1),
            "stroke": 1.5,
            "radius": 5,
            "outline": [
                " ".join(f"{x},{y}" for x, y in (xy(*p) for p in ring)) for ring in outline
            ],
        }
        for issue in located:
            x, y = xy(issue["lon"], issue["lat"])
            points.append(
                issue | {"x": x, "y": y, "colour": COLOURS.get(issue["severity"], "#000")}
            )
    return template("city_import_report.html").render(
        r=report,
        map=page_map,
        points=points,
        limit=ROWS_SHOWN,
        outcome=OUTCOME,
        table_zh=TABLE_ZH,
        field_zh=field_title,
        started=local_time(report["started_at"]),
        finished=local_time(report["finished_at"]),
    )
