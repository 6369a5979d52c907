"""Risk (风险评估): one score per grid and per H3 cell (resolution 8 or 9), from five terms.

For each area *a* (a grid; or an H3 cell, holding what lies at points inside it):

- ``hazards``   H(a) = Σ over open hazards (status ≠ closed) of (5 − level): a level-1 (most severe)
  hazard weighs 4, level 2 weighs 3, level 3 weighs 2, level 4 weighs 1;
- ``overdue``   O(a) = open hazards past their deadline at ``now``;
- ``warnings``  W(a) = active sensor warnings (``cleared_at`` IS NULL, started by ``now``), at
  their sensor;
- ``key_units`` K(a) = 消防重点单位 (organisations with ``is_key_unit``);
- ``density``   D(a) = residents per km² (each building's residents — the resident records where
  it has them, else its own 人数, as geo.population counts them — at the building's point; the
  grid's area in the metric CRS, the cell's from H3).

Each term is normalised by its largest value over the areas of the same kind: n_t(a) = t(a) /
max_b t(b) (0 when every area has 0), so each lies in [0, 1]. The score is the weighted mean, on
0–100:

    score(a) = 100 × Σ_t w_t × n_t(a) / Σ_t w_t

Weights: the setting ``safety.risk_weights`` (ONEMAP_RISK_WEIGHTS, ``name=value,…`` or a JSON
object; names left out keep their default), handed down by the caller; the defaults are hazards
0.30, overdue 0.20, warnings 0.20, key_units 0.15, density 0.15. Grids are scored all; cells only where some term is above zero. Relative by design: a score compares
the areas of one district at one moment, it is not an absolute probability.
"""

from __future__ import annotations

import json
from datetime import datetime

import h3
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest
from geo.population import PEOPLE_BY_BUILDING_SQL

TERMS = ("hazards", "overdue", "warnings", "key_units", "density")
DEFAULT_WEIGHTS = {
    "hazards": 0.30,
    "overdue": 0.20,
    "warnings": 0.20,
    "key_units": 0.15,
    "density": 0.15,
}
TERMS_ZH = {
    "hazards": "隐患(按等级加权)",
    "overdue": "逾期隐患",
    "warnings": "有效预警",
    "key_units": "重点单位",
    "density": "人口密度(人/km²)",
}
RESOLUTIONS = (8, 9)
FORMULA = "score = 100 × Σ w_t × (t / max t) / Σ w_t; hazards = Σ (5 − level) over open hazards"


def parse_weights(value: str | dict | None) -> dict[str, float]:
    """Weights from 'name=value,…', a JSON object or a dict, over the defaults; 400 if wrong."""
    if value is None or value == "":
        return dict(DEFAULT_WEIGHTS)
    given: dict
    if isinstance(value, dict):
        given = value
    elif value.strip().startswith("{"):
        try:
            given = json.loads(value)
        except ValueError as e:
            raise BadRequest(f"risk weights: not JSON ({e})") from e
    else:
        given = {}
        for part in value.split(","):
            name, sep, number = part.partition("=")
            if not sep:
                raise BadRequest(f"risk weights: '{part}' is not name=value")
            given[name.strip()] = number.strip()
    unknown = set(given) - set(TERMS)
    if unknown:
        raise BadRequest(
            f"risk weights: unknown term(s) {', '.join(sorted(unknown))}; known: {', '.join(TERMS)}"
        )
    weights = dict(DEFAULT_WEIGHTS)
    for name, number in given.items():
        try:
            weights[name] = float(number)
        except (TypeError, ValueError) as e:
            raise BadRequest(f"risk weights: {name} must be a number, not {number!r}") from e
        if not weights[name] >= 0:
            raise BadRequest(f"risk weights: {name} must be zero or more")
    if sum(weights.values()) <= 0:
        raise BadRequest("risk weights: at least one must be above zero")
    return weights


def score(areas: list[dict], weights: dict[str, float]) -> list[dict]:
    """Each area's terms normalised by the largest of its kind, and its score (in place)."""
    top = {t: max((a["terms"][t] for a in areas), default=0.0) for t in TERMS}
    total = sum(weights[t] for t in TERMS)
    for a in areas:
        a["normalised"] = {
            t: round(a["terms"][t] / top[t], 6) if top[t] > 0 else 0.0 for t in TERMS
        }
        a["score"] = round(100 * sum(weights[t] * a["normalised"][t] for t in TERMS) / total, 2)
    return areas


_GRID_SQL = """
    WITH hz AS (
        SELECT grid_code, sum(5 - level) AS hazards,
               count(*) FILTER (WHERE deadline < :now) AS overdue
        FROM hazards WHERE status <> 'closed' AND found_at <= :now GROUP BY grid_code),
    wn AS (
        SELECT s.grid_code, count(*) AS warnings FROM sensor_warnings w
        JOIN sensors s ON s.id = w.sensor_id
        WHERE w.cleared_at IS NULL AND w.started_at <= :now GROUP BY s.grid_code),
    ku AS (
        SELECT grid_code, count(*) AS key_units FROM organisations WHERE is_key_unit
        GROUP BY grid_code),
    pp AS (
        SELECT grid_code, sum(residents) AS residents FROM ({people}) p GROUP BY grid_code)
    SELECT g.code::text, g.name, ST_Area(ST_Transform(g.geom, {srid})) / 1e6 AS km2,
           coalesce(hz.hazards, 0), coalesce(hz.overdue, 0), coalesce(wn.warnings, 0),
           coalesce(ku.key_units, 0), coalesce(pp.residents, 0) {geometry}
    FROM grids g
    LEFT JOIN hz ON hz.grid_code = g.code LEFT JOIN wn ON wn.grid_code = g.code
    LEFT JOIN ku ON ku.grid_code = g.code LEFT JOIN pp ON pp.grid_code = g.code
    WHERE CAST(:district AS text) IS NULL OR g.district_code = :district
    ORDER BY g.code
"""


def risk_by_grid(
    conn: Connection,
    now: datetime,
    weights: str | dict | None = None,
    srid: int = 4549,
    geometry: bool = False,
    district: str | None = None,
) -> list[dict]:
    """Every grid's terms, normalised terms and score (and its GeoJSON geometry if asked);
    ``district``: that district's grids only, normalised among themselves."""
    weights = parse_weights(weights)
    srid = int(srid)
    rows = conn.execute(
        text(
            _GRID_SQL.format(
                people=PEOPLE_BY_BUILDING_SQL,
                srid=srid,
                geometry=", ST_AsGeoJSON(g.geom, 7)" if geometry else "",
            )
        ),
        {"now": now, "district": district},
    ).all()
    areas = []
    for r in rows:
        km2 = float(r[2])
        area = {
            "code": r[0],
            "name": r[1],
            "area_km2": round(km2, 6),
            "residents": int(r[7]),
            "terms": {
                "hazards": float(r[3]),
                "overdue": float(r[4]),
                "warnings": float(r[5]),
                "key_units": float(r[6]),
                "density": float(r[7]) / km2 if km2 > 0 else 0.0,
            },
        }
        if geometry:
            area["geometry"] = json.loads(r[8])
        areas.append(area)
    return score(areas, weights)


def _cell(lon: float, lat: float, resolution: int) -> str:
    return h3.latlng_to_cell(lat, lon, resolution)


def _mine(alias: str) -> str:
    """The row (of ``alias``) in ``:district``, or any row when it is NULL (the whole city)."""
    return f"(CAST(:district AS text) IS NULL OR {alias}district_code = :district)"


def risk_by_cell(
    conn: Connection,
    resolution: int,
    now: datetime,
    weights: str | dict | None = None,
    geometry: bool = False,
    district: str | None = None,
) -> list[dict]:
    """Every H3 cell (resolution 8 or 9) where some term is above zero: terms, normalised terms,
    score (and the cell's hexagon as GeoJSON if asked); ``district``: counting that district's
    rows only (a cell across the boundary holds this side's)."""
    if resolution not in RESOLUTIONS:
        raise BadRequest(f"H3 resolution must be one of {RESOLUTIONS}, not {resolution}")
    weights = parse_weights(weights)
    cells: dict[str, dict] = {}

    def add(lon, lat, term: str, value: float) -> None:
        cell = _cell(lon, lat, resolution)
        entry = cells.setdefault(cell, {t: 0.0 for t in (*TERMS, "residents")})
        entry[term] += float(value)

    for lon, lat, level, overdue in conn.execute(
        text(f"""SELECT ST_X(geom), ST_Y(geom), level, deadline < :now FROM hazards
                 WHERE status <> 'closed' AND found_at <= :now AND {_mine("")}"""),
        {"now": now, "district": district},
    ):
        add(lon, lat, "hazards", 5 - int(level))
        if overdue:
            add(lon, lat, "overdue", 1)
    for lon, lat in conn.execute(
        text(f"""SELECT ST_X(s.geom), ST_Y(s.geom) FROM sensor_warnings w
                 JOIN sensors s ON s.id = w.sensor_id
                 WHERE w.cleared_at IS NULL AND w.started_at <= :now AND {_mine("s.")}"""),
        {"now": now, "district": district},
    ):
        add(lon, lat, "warnings", 1)
    for lon, lat in conn.execute(
        text(f"SELECT ST_X(geom), ST_Y(geom) FROM organisations WHERE is_key_unit AND {_mine('')}"),
        {"district": district},
    ):
        add(lon, lat, "key_units", 1)
    for lon, lat, n in conn.execute(
        text(f"""SELECT ST_X(ST_PointOnSurface(b.geom)), ST_Y(ST_PointOnSurface(b.geom)),
                        p.residents
                 FROM ({PEOPLE_BY_BUILDING_SQL}) p JOIN buildings b ON b.id = p.id
                 WHERE p.residents > 0 AND {_mine("b.")}"""),
        {"district": district},
    ):
        add(lon, lat, "residents", n)
    areas = []
    for cell in sorted(cells):
        entry = cells[cell]
        km2 = h3.cell_area(cell, "km^2")
        area = {
            "code": cell,
            "resolution": resolution,
            "area_km2": round(km2, 6),
            "residents": int(entry["residents"]),
            "terms": {
                **{t: entry[t] for t in TERMS if t != "density"},
                "density": entry["residents"] / km2,
            },
        }
        if geometry:
            ring = [[lon, lat] for lat, lon in h3.cell_to_boundary(cell)]
            area["geometry"] = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        areas.append(area)
    return score(areas, weights)
