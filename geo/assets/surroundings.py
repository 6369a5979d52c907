"""Judging a site (区位分析): what lies around an idle asset, measured from its footprint.

Every distance is from the asset's footprint (0 inside it), in the district's metric CRS
(CGCS2000 3-degree Gauss–Krüger, EPSG:4549 for Lishui), the CRS the check-up measures in:
- residents within 1 km and 3 km: the district's residents summed over H3 cells (resolution 10,
  edge 66–76 m) whose centre lies within the radius; each building's residents (the resident
  records where the building has them, else its own 人数, as ``geo.population`` counts them)
  fall in the cell of the building's point. The answer is exact to a cell at the rim;
- the nearest road of each class, and the nearest main road (expressway or arterial, 主干路);
- facilities of each kind and organisations of each kind within 1 km;
- hazards within 500 m, by level and by whether they are closed;
- land use within 500 m: the area of each GB/T 21010 class inside the 500 m buffer.

The resident cells are counted once per process and counted again when the residents or the
buildings change (their row counts and last update, checked at most once a minute).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import h3
import numpy as np
import shapely
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.crs import CGCS2000, margin_degrees
from geo.errors import NotFound
from geo.population import PEOPLE_BY_BUILDING_SQL

RESIDENT_RADII_M = (1000, 3000)
FACILITY_RADIUS_M = 1000
ORGANISATION_RADIUS_M = 1000
HAZARD_RADIUS_M = 500
LANDUSE_RADIUS_M = 500
MAIN_ROADS = ("expressway", "arterial")
ROAD_CLASSES = ("expressway", "arterial", "secondary", "branch", "rural")
H3_RESOLUTION = 10
#: road candidates taken by the index (nearest in degrees) before measuring in metres
ROAD_CANDIDATES = 12
RECHECK_SECONDS = 60.0
METHOD = (
    f"H3 resolution {H3_RESOLUTION} cells (edge 66–76 m) whose centre lies within the radius of "
    "the footprint, summing each building's residents (resident records, else the building's "
    "人数) in the cell of its point; exact to one cell at the rim"
)


@dataclass
class _Cells:
    signature: tuple
    checked: float
    cells: dict[str, int]


_CACHE: dict[str, _Cells] = {}
_LOCK = threading.Lock()


def forget_cells() -> None:
    """Drop the residents per cell held (another process changed people or buildings)."""
    with _LOCK:
        _CACHE.clear()


def cells_held() -> int:
    """How many residents-per-cell counts this process holds (what ``forget_cells`` drops)."""
    with _LOCK:
        return len(_CACHE)


def _signature(conn: Connection) -> tuple:
    return tuple(
        conn.execute(
            text("""SELECT (SELECT count(*) FROM residents), (SELECT max(updated_at) FROM residents),
                           (SELECT count(*) FROM buildings), (SELECT max(updated_at) FROM buildings)""")
        ).one()
    )


def resident_cells(conn: Connection) -> dict[str, int]:
    """Residents per H3 cell of the district, counted again when the people or buildings change."""
    key = str(conn.engine.url)
    now = time.monotonic()
    with _LOCK:
        held = _CACHE.get(key)
        if held is not None and now - held.checked < RECHECK_SECONDS:
            return held.cells
    signature = _signature(conn)
    if held is not None and held.signature == signature:
        held.checked = now
        return held.cells
    rows = conn.execute(
        text(
            f"""SELECT ST_X(ST_PointOnSurface(b.geom)) AS lon, ST_Y(ST_PointOnSurface(b.geom)) AS lat,
                       p.residents
                FROM ({PEOPLE_BY_BUILDING_SQL}) p JOIN buildings b ON b.id = p.id
                WHERE p.residents > 0"""
        )
    ).all()
    cells: dict[str, int] = {}
    for lon, lat, n in rows:
        cell = h3.latlng_to_cell(lat, lon, H3_RESOLUTION)
        cells[cell] = cells.get(cell, 0) + int(n)
    with _LOCK:
        _CACHE[key] = _Cells(signature, now, cells)
    return cells


def _residents(conn: Connection, footprint, to_metric: Transformer, srid: int) -> list[dict]:
    cells = resident_cells(conn)
    centre = shapely.centroid(footprint)
    metric = shapely.transform(footprint, lambda xy: np.column_stack(to_metric.transform(*xy.T)))
    reach = max(RESIDENT_RADII_M) + math.dist(metric.bounds[:2], metric.bounds[2:])
    edge = h3.average_hexagon_edge_length(H3_RESOLUTION, "m")
    # cells here may be smaller than the average: one ring per edge length reaches far enough
    k = int(reach / edge) + 2
    disk = [c for c in h3.grid_disk(h3.latlng_to_cell(centre.y, centre.x, H3_RESOLUTION), k)]
    held = [c for c in disk if c in cells]
    out = []
    if held:
        lat, lon = np.array([h3.cell_to_latlng(c) for c in held]).T
        x, y = to_metric.transform(lon, lat)
        distance = shapely.distance(metric, shapely.points(x, y))
        counts = np.array([cells[c] for c in held])
    else:
        distance, counts = np.array([]), np.array([])
    for radius in RESIDENT_RADII_M:
        inside = distance <= radius
        out.append(
            {
                "radius_m": radius,
                "residents": int(counts[inside].sum()),
                "cells": int(inside.sum()),
            }
        )
    return out


def _roads(conn: Connection, asset_id: int, srid: int) -> tuple[list[dict], dict | None]:
    rows = conn.execute(
        text(
            f"""WITH a AS (SELECT geom, ST_Transform(geom, {srid}) AS m FROM assets WHERE id = :id)
                SELECT k.cls, r.name, round(ST_Distance(ST_Transform(r.geom, {srid}), a.m)::numeric, 1)
                FROM a, unnest(CAST(:classes AS text[])) AS k(cls),
                LATERAL (SELECT name, geom FROM roads WHERE class = k.cls
                         ORDER BY geom <-> a.geom LIMIT {ROAD_CANDIDATES}) r"""
        ),
        {"id": asset_id, "classes": list(ROAD_CLASSES)},
    ).all()
    best: dict[str, tuple[str, float]] = {}
    for cls, name, metres in rows:
        if cls not in best or float(metres) < best[cls][1]:
            best[cls] = (name, float(metres))
    nearest = [
        {"class": cls, "name": best[cls][0], "distance_m": best[cls][1]}
        for cls in ROAD_CLASSES
        if cls in best
    ]
    main = min(
        (r for r in nearest if r["class"] in MAIN_ROADS),
        key=lambda r: r["distance_m"],
        default=None,
    )
    return nearest, main


def _counts(
    conn: Connection,
    sql: str,
    asset_id: int,
    radius: float,
    margin: float,
    district: str | None = None,
) -> list:
    params = {"id": asset_id, "r": radius, "margin": margin, "district": district}
    return conn.execute(text(sql), params).all()


def _near(table: str, srid: int, select: str, group: str, where: str = "true") -> str:
    return f"""WITH a AS (SELECT geom, ST_Transform(geom, {srid}) AS m FROM assets WHERE id = :id)
               SELECT {select} FROM {table} t, a
               WHERE t.geom && ST_Expand(a.geom, :margin) AND {where}
                 AND ST_DWithin(ST_Transform(t.geom, {srid}), a.m, :r)
               GROUP BY {group} ORDER BY {group}"""


def surroundings(conn: Connection, asset_id: int, srid: int, district: str | None = None) -> dict:
    """The figures that judge a site, for one asset (any status: the caller decides who may ask).
    ``district``: count only that district's organisations, facilities and hazards (a caller
    bound to a district)."""
    mine = "true" if district is None else "t.district_code = :district"
    row = conn.execute(
        text("SELECT id, code, name, ST_AsBinary(geom) AS wkb FROM assets WHERE id = :id"),
        {"id": asset_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"no asset {asset_id}")
    footprint = shapely.from_wkb(bytes(row.wkb))
    lat = shapely.centroid(footprint).y
    to_metric = Transformer.from_crs(CGCS2000, srid, always_xy=True)
    roads, main = _roads(conn, asset_id, srid)
    facilities = _counts(
        conn,
        _near("facilities", srid, "t.kind, count(*)", "t.kind", mine),
        asset_id,
        FACILITY_RADIUS_M,
        margin_degrees(FACILITY_RADIUS_M, lat),
        district,
    )
    organisations = _counts(
        conn,
        _near("organisations", srid, "t.kind, count(*)", "t.kind", mine),
        asset_id,
        ORGANISATION_RADIUS_M,
        margin_degrees(ORGANISATION_RADIUS_M, lat),
        district,
    )
    hazards = _counts(
        conn,
        _near(
            "hazards",
            srid,
            "t.level, t.status = 'closed' AS closed, count(*)",
            "t.level, t.status = 'closed'",
            mine,
        ),
        asset_id,
        HAZARD_RADIUS_M,
        margin_degrees(HAZARD_RADIUS_M, lat),
        district,
    )
    landuse = conn.execute(
        text(
            f"""WITH a AS (SELECT geom, ST_Buffer(ST_Transform(geom, {srid}), :r, 16) AS ring
                           FROM assets WHERE id = :id)
                SELECT t.class_code, min(t.class_name),
                       sum(ST_Area(ST_Intersection(ST_Transform(t.geom, {srid}), a.ring)))
                FROM landuse_parcels t, a
                WHERE t.geom && ST_Expand(a.geom, :margin)
                  AND ST_Intersects(ST_Transform(t.geom, {srid}), a.ring)
                GROUP BY t.class_code ORDER BY 3 DESC"""
        ),
        {"id": asset_id, "r": LANDUSE_RADIUS_M, "margin": margin_degrees(LANDUSE_RADIUS_M, lat)},
    ).all()
    buffer_area = float(
        shapely.area(
            shapely.buffer(
                shapely.transform(
                    footprint, lambda xy: np.column_stack(to_metric.transform(*xy.T))
                ),
                LANDUSE_RADIUS_M,
                quad_segs=16,
            )
        )
    )
    hazard_levels: dict[int, dict] = {}
    for level, closed, n in hazards:
        entry = hazard_levels.setdefault(int(level), {"level": int(level), "open": 0, "closed": 0})
        entry["closed" if closed else "open"] += int(n)
    return {
        "asset": {"id": row.id, "code": row.code, "name": row.name},
        "measured_from": "footprint",
        "crs": f"EPSG:{srid}",
        "residents": {"method": METHOD, "rings": _residents(conn, footprint, to_metric, srid)},
        "roads": {"nearest": roads, "main_road": main, "main_classes": list(MAIN_ROADS)},
        "facilities": {
            "radius_m": FACILITY_RADIUS_M,
            "by_kind": {kind: int(n) for kind, n in facilities},
            "total": sum(int(n) for _, n in facilities),
        },
        "organisations": {
            "radius_m": ORGANISATION_RADIUS_M,
            "by_kind": {kind: int(n) for kind, n in organisations},
            "total": sum(int(n) for _, n in organisations),
        },
        "hazards": {
            "radius_m": HAZARD_RADIUS_M,
            "by_level": [hazard_levels[k] for k in sorted(hazard_levels)],
            "open": sum(e["open"] for e in hazard_levels.values()),
            "total": sum(e["open"] + e["closed"] for e in hazard_levels.values()),
        },
        "landuse": {
            "radius_m": LANDUSE_RADIUS_M,
            "area_m2": round(float(buffer_area), 1),
            "classes": [
                {
                    "class_code": code,
                    "class_name": name,
                    "area_m2": round(float(area), 1),
                    "share": round(float(area) / buffer_area, 4) if buffer_area else 0.0,
                }
                for code, name, area in landuse
            ],
        },
    }
