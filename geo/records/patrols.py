"""Patrols (巡查): a grid worker's round of their grids, with its track, the records verified
("checked, still true", 核实) and changed on the way, the hazards reported, and, when it ends, the
buildings visited.

A verification stamps ``verified_at``/``verified_by`` on the record, which ``onemap_touch`` lets
through without a new version: it is not an edit, so no one's If-Match goes stale. Each one is also
kept in ``verifications`` so that freshness can be told for any past week.

The rules, decided here once:

* a grid worker verifies only records in their grids (the records API's grid rule); a record
  elsewhere answers 404 as a missing one does, so a verify cannot probe other grids;
* a patrol is its walker's: another grid worker is told it does not exist (404); an ended patrol
  takes no more points, verifications or hazards (409); one patrol runs at a time per worker;
* track points outside the worker's grids are kept (streets run along grid edges and the track is
  where they walked) and counted as ``outside_points``; buildings visited are those of their own
  grids only;
* the track column is a 2D LINESTRING (migration 0017): each point's time is checked (zoned, in
  order, not before the start, not in the future) but not stored, the last one is;
* the records changed are read at the end from the record history (applied edits by the walker
  between start and end) and the review queue (their edits held for a community reviewer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import shapely
from shapely.geometry import LineString, shape
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge, Unauthorised
from geo.policy import audit
from geo.policy.roles import Viewer
from geo.records import store
from geo.records.types import record_type
from geo.safety import hazard_loop
from geo.settings import STORAGE_SRID

#: who walks patrols: grid workers in their grids; administrators anywhere (drills, cover)
WALKERS = ("grid_worker", "admin")
#: who may read any patrol (the office); a grid worker reads their own
OFFICE = ("admin", "planner", "safety")
#: a building within this many metres of the track was visited
VISIT_METRES = 30.0
MAX_POINTS_PER_CALL = 5_000
MAX_TRACK_POINTS = 50_000
#: a phone's clock may run this far ahead of ours
CLOCK_SLACK = timedelta(minutes=5)


def _zoned(when: datetime, what: str = "the time") -> datetime:
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise BadRequest(f"{what} has no zone: add one, e.g. 2026-05-01T09:00:00+08:00")
    return when


def _walker(viewer: Viewer) -> None:
    if viewer.role in WALKERS:
        return
    if viewer.anonymous:
        raise Unauthorised("请先登录: sign in to patrol")
    raise Forbidden(f"只有网格员可以巡查: your role '{viewer.role}' does not patrol")


def _row(conn: Connection, patrol_id: int, lock: bool = False):
    return conn.execute(
        text(f"""SELECT id, username, started_at, ended_at, grid_codes, buildings, verified,
                        changed, hazards, ST_AsGeoJSON(track, 8, 0) AS track
                 FROM patrols WHERE id = :id {"FOR UPDATE" if lock else ""}"""),
        {"id": patrol_id},
    ).first()


def _own(conn: Connection, viewer: Viewer, patrol_id: int, running: bool = True):
    """The caller's own patrol (locked), running unless ``running`` is False; another's is 404."""
    _walker(viewer)
    row = _row(conn, patrol_id, lock=True)
    if row is None or row.username != viewer.username:
        raise NotFound(f"没有此巡查: no patrol {patrol_id} of yours")
    if running and row.ended_at is not None:
        raise Conflict(f"巡查已结束: patrol {patrol_id} ended at {row.ended_at.isoformat()}")
    return row


def start(conn: Connection, viewer: Viewer, now: datetime) -> dict:
    """Begin a patrol of the caller's grids (an administrator's covers no grid in particular)."""
    _walker(viewer)
    now = _zoned(now)
    running = conn.execute(
        text("SELECT id FROM patrols WHERE username = :u AND ended_at IS NULL LIMIT 1"),
        {"u": viewer.username},
    ).scalar()
    if running is not None:
        raise Conflict(f"巡查进行中: patrol {running} is still running; end it before a new one")
    patrol_id = conn.execute(
        text("""INSERT INTO patrols (username, started_at, grid_codes)
                VALUES (:u, :at, :grids) RETURNING id"""),
        {"u": viewer.username, "at": now, "grids": sorted(viewer.grids)},
    ).scalar_one()
    audit.record(conn, viewer, "patrol_start", "patrols", patrol_id)
    return summary(conn, viewer, patrol_id)


def _points(points: object) -> list[tuple[float, float, datetime]]:
    if not isinstance(points, Sequence) or isinstance(points, str) or not points:
        raise BadRequest('points: send [[lon, lat, "2026-05-01T09:00:00+08:00"], …]')
    if len(points) > MAX_POINTS_PER_CALL:
        raise TooLarge(f"at most {MAX_POINTS_PER_CALL} points per call: send the track in parts")
    out = []
    for i, p in enumerate(points):
        if not isinstance(p, Sequence) or isinstance(p, str) or len(p) != 3:
            raise BadRequest(f"points[{i}] is not [lon, lat, time]")
        lon, lat, when = p
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lon, lat)):
            raise BadRequest(f"points[{i}]: lon and lat must be numbers")
        if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
            raise BadRequest(f"points[{i}] ({lon}, {lat}) is not a CGCS2000 longitude/latitude")
        if isinstance(when, str):
            try:
                when = datetime.fromisoformat(when.replace("Z", "+00:00"))
            except ValueError:
                raise BadRequest(f"points[{i}]: {when[:40]!r} is not an ISO 8601 time") from None
        out.append((float(lon), float(lat), _zoned(when, f"points[{i}]'s time")))
    return out


def add_track(
    conn: Connection,
    viewer: Viewer,
    patrol_id: int,
    points: object,
    now: datetime,
) -> dict:
    """Append points to the caller's running patrol's track, in time order; a point repeated in
    place is dropped. Answers how many points the track has and how many lie outside their grids."""
    row = _own(conn, viewer, patrol_id)
    fresh = _points(points)
    earliest = row.started_at  # the times of earlier calls' points are not stored (see above)
    for i, (_, _, when) in enumerate(fresh):
        if when < earliest:
            raise BadRequest(
                f"points[{i}] at {when.isoformat()} is before the patrol's start or the point "
                "before it: send the points in time order"
            )
        if when > _zoned(now) + CLOCK_SLACK:
            raise BadRequest(f"points[{i}] at {when.isoformat()} is in the future")
        earliest = when
    coords = list(shape(orjson.loads(row.track)).coords) if row.track else []
    if len(coords) == 2 and coords[0] == coords[1]:
        coords = coords[:1]  # a one-point track is stored as a line that stays in place
    for lon, lat, _ in fresh:
        if not coords or coords[-1] != (lon, lat):
            coords.append((lon, lat))
    if len(coords) > MAX_TRACK_POINTS:
        raise TooLarge(f"a patrol's track may hold at most {MAX_TRACK_POINTS} points")
    line = LineString(coords if len(coords) > 1 else coords * 2)
    conn.execute(
        text("""UPDATE patrols SET track = ST_SetSRID(ST_GeomFromText(:wkt), :srid)
                WHERE id = :id"""),
        {"wkt": shapely.to_wkt(line, rounding_precision=9), "srid": STORAGE_SRID, "id": patrol_id},
    )
    outside = _outside(conn, row.grid_codes, fresh)
    return {
        "id": patrol_id,
        "points": len(coords),
        "added": len(fresh),
        "outside_points": outside,
        "last_point_at": fresh[-1][2].isoformat(),
    }


def _outside(conn: Connection, grid_codes: list[str], points) -> int:
    """How many of ``points`` lie in none of the patrol's grids (none for an administrator's)."""
    if not grid_codes:
        return 0
    return conn.execute(
        text("""SELECT count(*) FROM unnest(CAST(:xs AS float8[]), CAST(:ys AS float8[])) p(x, y)
                WHERE NOT EXISTS (SELECT 1 FROM grids g WHERE g.code = ANY(:grids)
                    AND ST_Covers(g.geom, ST_SetSRID(ST_MakePoint(p.x, p.y), :srid)))"""),
        {
            "xs": [p[0] for p in points],
            "ys": [p[1] for p in points],
            "grids": list(grid_codes),
            "srid": STORAGE_SRID,
        },
    ).scalar_one()


def verify(
    conn: Connection,
    viewer: Viewer,
    record_type_name: str,
    record_id: int,
    now: datetime,
    patrol_id: int | None = None,
) -> dict:
    """ "Checked, still true": stamp the record (its version does not move) and log it."""
    now = _zoned(now)
    store.require_scope(viewer, write=True)  # 401/403 for those who may not edit records
    rtype = record_type(record_type_name)
    if patrol_id is not None:
        _own(conn, viewer, patrol_id)
    record = store.load(conn, rtype, record_id, lock=True)
    try:
        store.check_owned(conn, viewer, record, write=True)
    except Forbidden:
        raise NotFound(f"no {rtype.name} record {record_id} in your grids") from None
    stamped = conn.execute(
        text(f"""UPDATE {rtype.name} SET verified_at = :at, verified_by = :by WHERE id = :id
                 RETURNING version, verified_at, verified_by, grid_code"""),
        {"at": now, "by": viewer.username, "id": record_id},
    ).one()
    conn.execute(
        text("""INSERT INTO verifications (record_type, record_id, grid_code, verified_at,
                                           verified_by, patrol_id)
                VALUES (:t, :id, :grid, :at, :by, :patrol)"""),
        {
            "t": rtype.name,
            "id": record_id,
            "grid": stamped.grid_code,
            "at": now,
            "by": viewer.username,
            "patrol": patrol_id,
        },
    )
    audit.record(
        conn,
        viewer,
        "verify",
        rtype.name,
        record_id,
        detail={"version": stamped.version, "patrol_id": patrol_id},
    )
    return {
        "record_type": rtype.name,
        "record_id": record_id,
        "grid_code": stamped.grid_code,
        "verified_at": stamped.verified_at.isoformat(),
        "verified_by": stamped.verified_by,
        "version": stamped.version,
        "patrol_id": patrol_id,
    }


def report_hazard(
    conn: Connection,
    viewer: Viewer,
    patrol_id: int,
    *,
    category: str,
    level: int,
    description: str,
    lon: float,
    lat: float,
    now: datetime,
    photos: Sequence[tuple[bytes, str, str]] = (),
    folder: Path | None = None,
    deadline_days: Mapping[int, int] = hazard_loop.DEADLINE_DAYS,
) -> dict:
    """A hazard found on the patrol, into the hazard loop (source ``inspection``: found by
    inspecting, as the safety office counts it), in the walker's grids; linked to the patrol."""
    _own(conn, viewer, patrol_id)
    made = hazard_loop.report(
        conn,
        category=category,
        level=level,
        description=description,
        lon=lon,
        lat=lat,
        by=viewer.username,
        source="inspection",
        note=f"网格巡查发现 (巡查 {patrol_id})",
        evidence=[{"type": "patrol", "patrol_id": patrol_id}],
        when=_zoned(now),
        deadline_days=deadline_days,
        within=viewer.grids if viewer.role == "grid_worker" else None,
        photos=photos,
        folder=folder,
    )
    conn.execute(
        text("UPDATE patrols SET hazards = array_append(hazards, :h) WHERE id = :id"),
        {"h": made["id"], "id": patrol_id},
    )
    return made


def _verified(conn: Connection, patrol_id: int) -> list[dict]:
    rows = conn.execute(
        text("""SELECT record_type, record_id, min(verified_at) AS at FROM verifications
                WHERE patrol_id = :id GROUP BY record_type, record_id ORDER BY at, record_type,
                record_id"""),
        {"id": patrol_id},
    )
    return [{"type": r.record_type, "id": r.record_id, "at": r.at.isoformat()} for r in rows]


def _changed(conn: Connection, username: str, since: datetime, until: datetime) -> list[dict]:
    """The walker's edits between start and end: applied (history) and held for review."""
    applied = conn.execute(
        text("""SELECT record_type, record_id, max(version) AS version,
                       array_agg(DISTINCT action ORDER BY action) AS actions
                FROM record_history WHERE actor = :u AND at >= :since AND at <= :until
                GROUP BY record_type, record_id ORDER BY record_type, record_id"""),
        {"u": username, "since": since, "until": until},
    ).all()
    held = conn.execute(
        text("""SELECT id, record_type, record_id, action FROM record_reviews
                WHERE submitted_by = :u AND submitted_at >= :since AND submitted_at <= :until
                ORDER BY id"""),
        {"u": username, "since": since, "until": until},
    ).all()
    return [
        {"type": r.record_type, "id": r.record_id, "version": r.version, "actions": r.actions}
        for r in applied
    ] + [
        {"type": r.record_type, "id": r.record_id, "actions": [r.action], "review_id": r.id}
        for r in held
    ]


def visited_buildings(
    conn: Connection, patrol_id: int, grid_codes: Sequence[str], metric_srid: int
) -> list[int]:
    """Buildings within VISIT_METRES of the track (measured in the district's projected CRS),
    in the patrol's grids (any, for an administrator's patrol)."""
    rows = conn.execute(
        text("""WITH t AS (SELECT track, ST_Transform(track, :metric) AS m FROM patrols
                           WHERE id = :id AND track IS NOT NULL)
                SELECT b.id FROM buildings b, t
                WHERE ST_DWithin(b.geom, t.track, :deg)
                  AND ST_DWithin(ST_Transform(b.geom, :metric), t.m, :metres)
                  AND (cardinality(CAST(:grids AS text[])) = 0 OR b.grid_code = ANY(:grids))
                ORDER BY b.id"""),
        {
            "id": patrol_id,
            "metric": metric_srid,
            "metres": VISIT_METRES,
            # a loose first cut in degrees (0.001° ≥ 90 m at this latitude) for the index
            "deg": VISIT_METRES / 30_000,
            "grids": list(grid_codes),
        },
    ).scalars()
    return list(rows)


def end(
    conn: Connection, viewer: Viewer, patrol_id: int, now: datetime, metric_srid: int = 4549
) -> dict:
    """End the caller's patrol: store the buildings visited, the records verified and changed."""
    row = _own(conn, viewer, patrol_id)
    now = _zoned(now)
    if now < row.started_at:
        raise BadRequest("a patrol cannot end before it started")
    buildings = visited_buildings(conn, patrol_id, row.grid_codes, metric_srid)
    verified = _verified(conn, patrol_id)
    changed = _changed(conn, row.username, row.started_at, now)
    conn.execute(
        text("""UPDATE patrols SET ended_at = :at, buildings = :b,
                    verified = CAST(:v AS jsonb), changed = CAST(:c AS jsonb) WHERE id = :id"""),
        {
            "at": now,
            "b": buildings,
            "v": orjson.dumps(verified).decode(),
            "c": orjson.dumps(changed).decode(),
            "id": patrol_id,
        },
    )
    audit.record(
        conn,
        viewer,
        "patrol_end",
        "patrols",
        patrol_id,
        detail={"buildings": len(buildings), "verified": len(verified), "changed": len(changed)},
    )
    return summary(conn, viewer, patrol_id)


def _in_district(conn: Connection, viewer: Viewer, row) -> bool:
    """A district-bound office reads the patrols in its district: one that walked a grid of it,
    or (none walked yet) one by a walker bound to it."""
    if viewer.district is None or row.username == viewer.username:
        return True
    if row.grid_codes:
        return any(g[:6] == viewer.district for g in row.grid_codes)
    walker = conn.execute(
        text("SELECT district_code FROM users WHERE username = :u"), {"u": row.username}
    ).scalar()
    return walker == viewer.district


def summary(conn: Connection, viewer: Viewer, patrol_id: int) -> dict:
    """One patrol as stored: the walker reads their own, the office any; others are told 404."""
    row = _row(conn, patrol_id)
    if viewer.anonymous:
        raise Unauthorised("请先登录: sign in to read patrols")
    if (
        row is None
        or (viewer.role not in OFFICE and row.username != viewer.username)
        or not _in_district(conn, viewer, row)
    ):
        raise NotFound(f"没有此巡查: no patrol {patrol_id} of yours")
    track = orjson.loads(row.track) if row.track else None
    length = conn.execute(
        text("SELECT ST_Length(CAST(track AS geography)) FROM patrols WHERE id = :id"),
        {"id": patrol_id},
    ).scalar()
    ended = row.ended_at is not None
    return {
        "id": row.id,
        "username": row.username,
        "status": "ended" if ended else "running",
        "status_zh": "已结束" if ended else "巡查中",
        "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if ended else None,
        "grid_codes": list(row.grid_codes),
        "track": track,
        "track_points": len(track["coordinates"]) if track else 0,
        "length_m": round(float(length), 1) if length is not None else 0.0,
        "buildings": list(row.buildings),
        "verified": row.verified if ended else _verified(conn, patrol_id),
        "changed": row.changed,
        "hazards": list(row.hazards),
    }
