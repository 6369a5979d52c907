"""Inspections (安全检查) from three sources (leader night checks 领导夜查, department checks 部门检查,
grid patrols 网格巡查), and coverage: which grids and key units were inspected in a period, and
which were not.

An inspection is a point, or a route walked through points (its first point places it in a
grid); a grid counts as inspected when an inspection was placed in it or its route crossed it,
a key unit when an inspection names it. Hazards an inspection finds are reported through the
hazard loop (source ``inspection``), so they start their own closed loop; hazards it checks again
are linked as ``rechecked``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest, Forbidden, Invalid
from geo.models.hazards import INSPECTION_SOURCES
from geo.records.store import counted
from geo.safety.hazard_loop import DEADLINE_DAYS, grid_at, report
from geo.settings import STORAGE_SRID

SOURCE_ZH = {"leader_night": "领导夜查", "department": "部门检查", "grid_patrol": "网格巡查"}
RESULTS = ("passed", "hazard_found", "rectified")


def _points(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    if not points:
        raise BadRequest("give the inspection's place: 'points', one [lon, lat] or a route of them")
    out = []
    for p in points:
        if len(p) != 2 or not all(isinstance(v, int | float) and math.isfinite(v) for v in p):
            raise BadRequest(f"{p!r} is not a [lon, lat] pair (CGCS2000 degrees)")
        out.append((float(p[0]), float(p[1])))
    return out


def record(
    conn: Connection,
    *,
    source: str,
    inspector: str,
    points: Sequence[Sequence[float]],
    by: str,
    when: datetime | None = None,
    result: str | None = None,
    notes: str | None = None,
    organisation_id: int | None = None,
    found: Sequence[Mapping] = (),
    rechecked: Sequence[int] = (),
    deadline_days: Mapping[int, int] = DEADLINE_DAYS,
    within: frozenset[str] | None = None,
) -> dict:
    """Keep an inspection, report the hazards it found and link those it checked again, all in
    the caller's transaction (one refusal and nothing is kept). ``found``: dicts with category,
    level, description, department and optionally lon/lat (default: the inspection's place)."""
    if source not in INSPECTION_SOURCES:
        known = ", ".join(f"{s} ({SOURCE_ZH[s]})" for s in INSPECTION_SOURCES)
        raise BadRequest(f"检查来源未知: source {source!r} is not one of {known}")
    if result is not None and result not in RESULTS:
        raise BadRequest(f"result {result!r} is not one of {', '.join(RESULTS)}")
    inspector = (inspector or "").strip()[:50]
    if not inspector:
        raise BadRequest("name the inspector in 'inspector'")
    if when is not None and when.tzinfo is None:
        raise BadRequest(f"the time {when.isoformat()} has no zone: add one, e.g. +08:00")
    when = when or datetime.now(UTC)
    place = _points(points)
    grid = grid_at(conn, *place[0])
    if within is not None and grid not in within:
        raise Forbidden(f"此位置不在您的网格内: the inspection is in grid {grid}, not one of yours")
    if organisation_id is not None and (
        conn.execute(
            text("SELECT 1 FROM organisations WHERE id = :id"), {"id": organisation_id}
        ).first()
        is None
    ):
        raise Invalid(f"no organisation {organisation_id}: give the key unit's id, or none")
    rechecked = list(dict.fromkeys(rechecked))
    if rechecked:
        known = set(
            conn.execute(
                text("SELECT id FROM hazards WHERE id = ANY(:ids)"), {"ids": rechecked}
            ).scalars()
        )
        missing = [h for h in rechecked if h not in known]
        if missing:
            raise Invalid(f"no hazard {', '.join(map(str, missing))} to re-check")
    made = [
        report(
            conn,
            category=f.get("category"),
            level=f.get("level"),
            description=f.get("description"),
            lon=float(f.get("lon", place[0][0])),
            lat=float(f.get("lat", place[0][1])),
            by=inspector,
            source="inspection",
            department=f.get("department"),
            organisation_id=organisation_id,
            note=f"{SOURCE_ZH[source]}发现",
            when=when,
            deadline_days=deadline_days,
            within=within,
        )
        for f in found
    ]
    route = None
    if len(place) > 1:
        route = "LINESTRING(" + ", ".join(f"{x!r} {y!r}" for x, y in place) + ")"
    linked = [h["id"] for h in made] + rechecked
    inspection_id = conn.execute(
        text("""INSERT INTO inspections (hazard_id, source, inspector, inspected_at, result,
                    notes, organisation_id, grid_code, geom, route)
                VALUES (:hazard, :source, :inspector, :at, :result, :notes, :org, :grid,
                    ST_SetSRID(ST_MakePoint(:lon, :lat), :srid),
                    ST_GeomFromText(:route, :srid))
                RETURNING id"""),
        {
            "hazard": linked[0] if linked else None,
            "source": source,
            "inspector": inspector,
            "at": when,
            "result": result or ("hazard_found" if made else "passed"),
            "notes": (notes or "").strip()[:4000] or None,
            "org": organisation_id,
            "grid": grid,
            "lon": place[0][0],
            "lat": place[0][1],
            "route": route,
            "srid": STORAGE_SRID,
        },
    ).scalar_one()
    counted(conn, "inspections", 1)
    links = [(h["id"], "found") for h in made] + [(h, "rechecked") for h in rechecked]
    for hazard_id, relation in links:
        conn.execute(
            text("""INSERT INTO inspection_hazards (inspection_id, hazard_id, relation)
                    VALUES (:i, :h, :r)"""),
            {"i": inspection_id, "h": hazard_id, "r": relation},
        )
    return {
        "id": inspection_id,
        "source": source,
        "grid_code": grid,
        "route": route is not None,
        "found": made,
        "rechecked": rechecked,
    }


def coverage(conn: Connection, start: datetime, end: datetime, district: str | None = None) -> dict:
    """Per grid and per key unit, the inspections of ``[start, end)`` by source, and the lists of
    those with none; ``district``: that district's grids and key units only (None: the city's)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise BadRequest("give start and end with a zone (or as days)")
    if end <= start:
        raise BadRequest(f"the period is empty: end {end.isoformat()} is not after start")
    params = {"start": start, "end": end, "district": district}
    anywhere = "CAST(:district AS text) IS NULL"
    per_source = ", ".join(
        f"count(DISTINCT i.id) FILTER (WHERE i.source = '{s}') AS {s}" for s in INSPECTION_SOURCES
    )
    grids = conn.execute(
        text(f"""SELECT g.code, g.name, c.parent_code AS street_code, {per_source}
                 FROM grids g JOIN admin_areas c ON c.code = g.community_code
                 LEFT JOIN inspections i ON i.inspected_at >= :start AND i.inspected_at < :end
                     AND (i.grid_code = g.code
                          OR (i.route IS NOT NULL AND ST_Intersects(i.route, g.geom)))
                 WHERE {anywhere} OR g.district_code = :district
                 GROUP BY g.code, g.name, c.parent_code ORDER BY g.code"""),
        params,
    ).all()
    units = conn.execute(
        text(f"""SELECT o.id, o.name, o.grid_code, {per_source}
                 FROM organisations o
                 LEFT JOIN inspections i ON i.organisation_id = o.id
                     AND i.inspected_at >= :start AND i.inspected_at < :end
                 WHERE o.is_key_unit AND ({anywhere} OR o.district_code = :district)
                 GROUP BY o.id, o.name, o.grid_code ORDER BY o.id"""),
        params,
    ).all()

    def by_source(r) -> dict:
        return {s: getattr(r, s) for s in INSPECTION_SOURCES}

    grid_rows = [
        {"code": r.code, "name": r.name, "street_code": r.street_code, "by_source": by_source(r)}
        for r in grids
    ]
    unit_rows = [
        {"id": r.id, "name": r.name, "grid_code": r.grid_code, "by_source": by_source(r)}
        for r in units
    ]
    for row in grid_rows + unit_rows:
        row["inspected"] = any(row["by_source"].values())
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "district": district,
        "grids": {
            "total": len(grid_rows),
            "inspected": sum(r["inspected"] for r in grid_rows),
            "not_inspected": [r["code"] for r in grid_rows if not r["inspected"]],
            "each": grid_rows,
        },
        "key_units": {
            "total": len(unit_rows),
            "inspected": sum(r["inspected"] for r in unit_rows),
            "not_inspected": [r["id"] for r in unit_rows if not r["inspected"]],
            "each": unit_rows,
        },
    }
