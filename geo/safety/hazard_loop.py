"""A hazard's closed loop (隐患闭环整治): reported → assigned → rectifying → verified → closed.

A hazard is reported at a point, which gives it its grid (the grid containing the point: a point
in no grid is refused) and its deadline (the level's days, configured by
``ONEMAP_HAZARD_DEADLINE_DAYS``). Each move is checked against the allowed moves and the version
the caller read, in the caller's transaction, and appends a step with who, when, a note and the
evidence (notes, photos): the steps are the loop's record and are never changed. A hazard is
overdue while it is not closed and its deadline has passed; ``now`` is always a parameter so that
a frozen clock can be handed in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.assets.photos import EXTENSIONS, MAX_PHOTO_BYTES, media_type_of, write_whole
from geo.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Stale,
    TooLarge,
    Unsupported,
)
from geo.models.hazards import HAZARD_CATEGORIES, HAZARD_SOURCES, HAZARD_STATUSES
from geo.records.store import counted
from geo.settings import STORAGE_SRID

#: status → the statuses it may move to: a rectification not done is sent back to the unit
#: (rectifying → assigned), a check that fails sends it back to rectifying (verified →
#: rectifying); a closed hazard is done (a new finding is a new hazard)
MOVES: dict[str, tuple[str, ...]] = {
    "reported": ("assigned",),
    "assigned": ("rectifying",),
    "rectifying": ("verified", "assigned"),
    "verified": ("closed", "rectifying"),
    "closed": (),
}
STATUS_ZH = {
    "reported": "已上报",
    "assigned": "已交办",
    "rectifying": "整改中",
    "verified": "已验收",
    "closed": "已销号",
}
CATEGORY_ZH = {
    "fire": "消防",
    "gas": "燃气",
    "structural": "房屋结构",
    "flood": "防汛",
    "traffic": "交通",
    "production": "安全生产",
    "electrical": "用电",
}
#: the default deadlines (days by level, 1 the most severe); the service's come from its settings
DEADLINE_DAYS: Mapping[int, int] = {1: 3, 2: 7, 3: 15, 4: 30}
#: how a department with no name is shown in the daily summary
NO_DEPARTMENT = "未指定"
#: where a hazard's evidence photos are kept, under the database's photo folder
EVIDENCE_FOLDER = "hazards"

_COLUMNS = """h.id, h.code, h.category, h.level, h.description, h.status, h.found_at, h.deadline,
    h.closed_at, h.organisation_id, h.department, h.source, h.reported_by, h.grid_code,
    c.parent_code AS street_code, h.version, ST_X(h.geom) AS lon, ST_Y(h.geom) AS lat"""
_FROM = """hazards h JOIN grids g ON g.code = h.grid_code
    JOIN admin_areas c ON c.code = g.community_code"""


def _when(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise BadRequest(f"the time {value.isoformat()} has no zone: add one, e.g. +08:00")
    return value


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def deadline_for(found_at: datetime, level: int, days: Mapping[int, int] = DEADLINE_DAYS):
    """When a hazard of ``level`` found at ``found_at`` must be closed."""
    return found_at + timedelta(days=days[level])


def is_overdue(status: str, deadline: datetime, now: datetime) -> bool:
    """The overdue rule, once: not closed and past its deadline."""
    return status != "closed" and deadline < now


def grid_at(conn: Connection, lon: float, lat: float) -> str:
    """The grid containing a CGCS2000 point; a point in no grid is refused (400), saying whether
    it is outside the district altogether."""
    if not (math.isfinite(lon) and math.isfinite(lat)) or abs(lon) > 180 or abs(lat) > 90:
        raise BadRequest(f"({lon}, {lat}) is not a longitude/latitude pair")
    point = "ST_SetSRID(ST_MakePoint(:lon, :lat), :srid)"
    found = conn.execute(
        text(f"SELECT code FROM grids WHERE ST_Covers(geom, {point}) ORDER BY code LIMIT 1"),
        {"lon": lon, "lat": lat, "srid": STORAGE_SRID},
    ).scalar()
    if found is not None:
        return found
    inside = conn.execute(
        text(f"SELECT 1 FROM admin_areas WHERE level = 1 AND ST_Covers(geom, {point})"),
        {"lon": lon, "lat": lat, "srid": STORAGE_SRID},
    ).first()
    if inside is None:
        raise BadRequest(
            f"位置不在本区范围内: the point ({lon:.6f}, {lat:.6f}) (CGCS2000) is outside the "
            "district; report hazards inside it, or call the hazard's own district"
        )
    raise BadRequest(
        f"位置不在任何网格内: the point ({lon:.6f}, {lat:.6f}) (CGCS2000) is in no grid, so no one "
        "answers for it; move it onto the grid it belongs to"
    )


def _checked_fields(category: str, level: int, description: str) -> str:
    if category not in HAZARD_CATEGORIES:
        known = ", ".join(f"{c} ({CATEGORY_ZH[c]})" for c in HAZARD_CATEGORIES)
        raise BadRequest(f"隐患类别未知: {category!r} is not a hazard category; one of {known}")
    _checked_level(level)
    description = (description or "").strip()
    if not description:
        raise BadRequest("请描述隐患: say what the hazard is in 'description'")
    return description[:2000]


def _checked_level(level: int) -> None:
    if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= 4:
        raise BadRequest(f"隐患等级应为 1-4: level {level!r} is not 1 (most severe) to 4")


def _next_code(conn: Connection, grid: str) -> str:
    """YH + the grid's 15 digits + a 5-digit sequence, the next in the grid; reports in one grid
    wait for each other (a transaction lock) so two never take the same number."""
    prefix = "YH" + grid
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": prefix})
    last = conn.execute(
        text("SELECT max(right(code, 5)) FROM hazards WHERE code LIKE :p || '%'"),
        {"p": prefix},
    ).scalar()
    sequence = int(last) + 1 if last else 1
    if sequence > 99_999:
        raise Conflict(f"grid {grid} has used all 99999 hazard numbers")
    return f"{prefix}{sequence:05d}"


def report(
    conn: Connection,
    *,
    category: str,
    level: int,
    description: str,
    lon: float,
    lat: float,
    by: str,
    source: str = "report",
    department: str | None = None,
    organisation_id: int | None = None,
    note: str | None = None,
    evidence: Sequence[dict] = (),
    when: datetime | None = None,
    deadline_days: Mapping[int, int] = DEADLINE_DAYS,
    within: frozenset[str] | None = None,
    photos: Sequence[tuple[bytes, str, str]] = (),
    folder: Path | None = None,
) -> dict:
    """Record a hazard at a CGCS2000 point as ``reported``, with its first step. ``within``: the
    grids the reporter answers for (None: any); a point in another grid is refused (403).
    ``photos``: checked ones (:func:`checked_photo`), kept as the first step's evidence."""
    if photos and folder is None:
        raise BadRequest("photos need the service's photo folder")
    description = _checked_fields(category, level, description)
    if source not in HAZARD_SOURCES:
        raise BadRequest(f"source {source!r} is not one of {', '.join(HAZARD_SOURCES)}")
    when = _when(when)
    grid = grid_at(conn, lon, lat)
    if within is not None and grid not in within:
        raise Forbidden(f"此位置不在您的网格内: the point is in grid {grid}, not one of yours")
    if organisation_id is not None:
        unit = conn.execute(
            text("SELECT 1 FROM organisations WHERE id = :id"), {"id": organisation_id}
        ).first()
        if unit is None:
            raise Invalid(f"no organisation {organisation_id}: give the key unit's id, or none")
    code = _next_code(conn, grid)
    hazard_id = conn.execute(
        text("""INSERT INTO hazards (code, category, level, description, status, found_at,
                    deadline, organisation_id, department, source, reported_by, grid_code, geom)
                VALUES (:code, :category, :level, :description, 'reported', :found, :deadline,
                    :org, :department, :source, :by, :grid,
                    ST_SetSRID(ST_MakePoint(:lon, :lat), :srid))
                RETURNING id"""),
        {
            "code": code,
            "category": category,
            "level": level,
            "description": description,
            "found": when,
            "deadline": deadline_for(when, level, deadline_days),
            "org": organisation_id,
            "department": (department or "").strip()[:50] or None,
            "source": source,
            "by": by[:50],
            "grid": grid,
            "lon": lon,
            "lat": lat,
            "srid": STORAGE_SRID,
        },
    ).scalar_one()
    counted(conn, "hazards", 1)
    kept = [dict(e) for e in evidence] + [keep_photo(folder, hazard_id, p) for p in photos]
    _append_step(conn, hazard_id, "reported", by, note, kept, when)
    return {"id": hazard_id, "code": code, "grid_code": grid}


def _append_step(conn, hazard_id, status, by, note, evidence, when) -> None:
    conn.execute(
        text("""INSERT INTO hazard_steps (hazard_id, status, changed_at, changed_by, note, evidence)
                VALUES (:id, :status, :at, :by, :note, CAST(:evidence AS jsonb))"""),
        {
            "id": hazard_id,
            "status": status,
            "at": when,
            "by": by[:50],
            "note": (note or "").strip()[:2000] or None,
            "evidence": orjson.dumps(evidence).decode(),
        },
    )


def checked_photo(data: bytes, file_name: str | None) -> tuple[bytes, str, str]:
    """An evidence photo checked before anything is written: size, and type by its content."""
    if len(data) > MAX_PHOTO_BYTES:
        raise TooLarge(f"a photo may be at most {MAX_PHOTO_BYTES // (1024 * 1024)} MB")
    if not data:
        raise BadRequest("the photo is empty: send the image file")
    media_type = media_type_of(data[:16])
    if media_type is None:
        raise Unsupported("照片须为 JPEG、PNG 或 WebP: a photo must be a JPEG, PNG or WebP image")
    name = (file_name or "photo").replace("\\", "/").rsplit("/", 1)[-1].strip()[:200] or "photo"
    return data, media_type, name


def keep_photo(folder: Path, hazard_id: int, photo: tuple[bytes, str, str]) -> dict:
    """Write a checked photo under ``hazards/<id>/<sha256>.<ext>``; its evidence entry."""
    data, media_type, name = photo
    digest = hashlib.sha256(data).hexdigest()
    stored_as = f"{EVIDENCE_FOLDER}/{hazard_id}/{digest}.{EXTENSIONS[media_type]}"
    write_whole(folder / stored_as, data)
    return {
        "type": "photo",
        "stored_as": stored_as,
        "media_type": media_type,
        "bytes": len(data),
        "sha256": digest,
        "file_name": name,
    }


def move(
    conn: Connection,
    hazard_id: int,
    to: str,
    by: str,
    note: str | None = None,
    evidence: Sequence[dict] = (),
    version: int | None = None,
    when: datetime | None = None,
    *,
    photos: Sequence[tuple[bytes, str, str]] = (),
    folder: Path | None = None,
    level: int | None = None,
    department: str | None = None,
    deadline_days: Mapping[int, int] = DEADLINE_DAYS,
    within: frozenset[str] | None = None,
) -> dict:
    """Move a hazard to ``to``: the row (locked) and a new step change together. ``photos`` are
    checked ones (:func:`checked_photo`), written under ``folder`` only once the move is allowed.
    On assigning, the level (and so the deadline) and the department may be set."""
    if to not in HAZARD_STATUSES:
        raise Conflict(f"unknown status {to!r}: one of {', '.join(HAZARD_STATUSES)}")
    if (level is not None or department is not None) and to != "assigned":
        raise BadRequest("a level or department is given when assigning (to 'assigned') only")
    if level is not None:
        _checked_level(level)
    if photos and folder is None:
        raise BadRequest("photos need the service's photo folder")
    row = conn.execute(
        text("""SELECT id, code, status, level, found_at, grid_code, version FROM hazards
                WHERE id = :id FOR UPDATE"""),
        {"id": hazard_id},
    ).one_or_none()
    if row is None or (within is not None and row.grid_code not in within):
        raise NotFound(f"no hazard {hazard_id}")
    if version is not None and version != row.version:
        raise Stale(
            f"隐患 {row.code} 已被他人更新: it is at version {row.version}, not {version}; read it "
            "again and decide on its current status"
        )
    if to not in MOVES[row.status]:
        allowed = ", ".join(f"{s} ({STATUS_ZH[s]})" for s in MOVES[row.status]) or "none (已闭环)"
        raise Conflict(
            f"隐患 {row.code} 为{STATUS_ZH[row.status]} ({row.status}), 不能转为{STATUS_ZH[to]} "
            f"({to}). Allowed: {allowed}",
            allowed=list(MOVES[row.status]),
        )
    when = _when(when)
    changes = {"id": hazard_id, "to": to, "closed": when if to == "closed" else None}
    extra = ""
    if level is not None:
        extra += ", level = :level, deadline = :deadline"
        changes |= {"level": level, "deadline": deadline_for(row.found_at, level, deadline_days)}
    if department is not None:
        extra += ", department = :department"
        changes["department"] = department.strip()[:50] or None
    conn.execute(
        text(f"UPDATE hazards SET status = :to, closed_at = :closed{extra} WHERE id = :id"),
        changes,
    )
    kept = [dict(e) for e in evidence] + [keep_photo(folder, hazard_id, p) for p in photos]
    _append_step(conn, hazard_id, to, by, note, kept, when)
    return {"id": hazard_id, "code": row.code, "status": to}


def steps(conn: Connection, hazard_id: int) -> list[dict]:
    """Every step of a hazard, oldest first."""
    rows = conn.execute(
        text("""SELECT status, changed_at, changed_by, note, evidence FROM hazard_steps
                WHERE hazard_id = :id ORDER BY changed_at, id"""),
        {"id": hazard_id},
    ).all()
    return [
        {
            "status": r.status,
            "status_zh": STATUS_ZH[r.status],
            "changed_at": _iso(r.changed_at),
            "changed_by": r.changed_by,
            "note": r.note,
            "evidence": r.evidence,
        }
        for r in rows
    ]


def _feature(r, now: datetime, personal: bool) -> dict:
    properties = {
        "id": r.id,
        "code": r.code,
        "category": r.category,
        "category_zh": CATEGORY_ZH.get(r.category, r.category),
        "level": r.level,
        "description": r.description,
        "status": r.status,
        "status_zh": STATUS_ZH[r.status],
        "next": list(MOVES[r.status]),
        "found_at": _iso(r.found_at),
        "deadline": _iso(r.deadline),
        "closed_at": _iso(r.closed_at),
        "overdue": is_overdue(r.status, r.deadline, now),
        "organisation_id": r.organisation_id,
        "department": r.department,
        "source": r.source,
        "grid_code": r.grid_code,
        "street_code": r.street_code,
        "version": r.version,
    }
    if personal:  # who reported it is the office's business
        properties["reported_by"] = r.reported_by
    return {
        "type": "Feature",
        "id": r.id,
        "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
        "properties": properties,
    }


def get(
    conn: Connection,
    hazard_id: int,
    now: datetime,
    within: frozenset[str] | None = None,
    personal: bool = True,
) -> dict:
    """One hazard as a GeoJSON feature with its steps (404 outside ``within``'s grids)."""
    row = conn.execute(
        text(f"SELECT {_COLUMNS} FROM {_FROM} WHERE h.id = :id"), {"id": hazard_id}
    ).one_or_none()
    if row is None or (within is not None and row.grid_code not in within):
        raise NotFound(f"no hazard {hazard_id}")
    feature = _feature(row, now, personal)
    feature["properties"]["steps"] = steps(conn, hazard_id)
    return feature


def find(
    conn: Connection,
    now: datetime,
    *,
    status: str | None = None,
    level: int | None = None,
    category: str | None = None,
    grid: str | None = None,
    street: str | None = None,
    department: str | None = None,
    overdue: bool | None = None,
    within: frozenset[str] | None = None,
    personal: bool = True,
    limit: int = 1000,
    offset: int = 0,
) -> dict:
    """Hazards matching every filter given, as a GeoJSON FeatureCollection (newest first)."""
    if status is not None and status not in HAZARD_STATUSES:
        raise BadRequest(f"status {status!r} is not one of {', '.join(HAZARD_STATUSES)}")
    if category is not None and category not in HAZARD_CATEGORIES:
        raise BadRequest(f"category {category!r} is not one of {', '.join(HAZARD_CATEGORIES)}")
    where, params = ["TRUE"], {"now": now, "limit": limit, "offset": offset}
    for column, value in (
        ("h.status", status),
        ("h.level", level),
        ("h.category", category),
        ("h.grid_code", grid),
        ("c.parent_code", street),
        ("h.department", department),
    ):
        if value is not None:
            name = column.split(".")[1]
            where.append(f"{column} = :{name}")
            params[name] = value
    if overdue is not None:
        rule = "(h.status <> 'closed' AND h.deadline < :now)"
        where.append(rule if overdue else f"NOT {rule}")
    if within is not None:
        where.append("h.grid_code = ANY(:within)")
        params["within"] = sorted(within)
    sql = f"""SELECT {_COLUMNS}, count(*) OVER () AS matched FROM {_FROM}
              WHERE {" AND ".join(where)} ORDER BY h.found_at DESC, h.id DESC
              LIMIT :limit OFFSET :offset"""
    rows = conn.execute(text(sql), params).all()
    return {
        "type": "FeatureCollection",
        "numberMatched": rows[0].matched if rows else 0,
        "numberReturned": len(rows),
        "features": [_feature(r, now, personal) for r in rows],
    }


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The start and end of a calendar day in the service's zone."""
    start = datetime.combine(day, time(0), tzinfo=ZoneInfo(zone))
    return start, start + timedelta(days=1)


def daily_summary(
    conn: Connection, day: date, zone: str = "Asia/Shanghai", district: str | None = None
) -> dict:
    """Per street and per department: found that day, closed that day, and open and overdue at
    the day's end (not closed by then; overdue: past the deadline by then). ``district``: that
    district's streets and hazards only (None: the whole city's)."""
    start, end = day_bounds(day, zone)
    counts = """count(*) FILTER (WHERE h.found_at >= :start AND h.found_at < :end) AS found,
        count(*) FILTER (WHERE h.closed_at >= :start AND h.closed_at < :end) AS closed,
        count(*) FILTER (WHERE h.found_at < :end AND (h.closed_at IS NULL OR h.closed_at >= :end))
            AS open,
        count(*) FILTER (WHERE h.found_at < :end AND (h.closed_at IS NULL OR h.closed_at >= :end)
            AND h.deadline < :end) AS overdue"""
    params = {"start": start, "end": end, "district": district}
    anywhere = "CAST(:district AS text) IS NULL"
    streets = conn.execute(
        text(f"""SELECT s.code, s.name, {counts}
                 FROM admin_areas s
                 LEFT JOIN admin_areas c ON c.parent_code = s.code AND c.level = 3
                 LEFT JOIN grids g ON g.community_code = c.code
                 LEFT JOIN hazards h ON h.grid_code = g.code
                 WHERE s.level = 2 AND ({anywhere} OR s.district_code = :district)
                 GROUP BY s.code, s.name ORDER BY s.code"""),
        params,
    ).all()
    departments = conn.execute(
        text(f"""SELECT coalesce(h.department, :none) AS department, {counts}
                 FROM hazards h WHERE {anywhere} OR h.district_code = :district
                 GROUP BY 1 ORDER BY 1"""),
        params | {"none": NO_DEPARTMENT},
    ).all()
    keys = ("found", "closed", "open", "overdue")
    return {
        "day": day.isoformat(),
        "timezone": zone,
        "district": district,
        "streets": [
            {"code": r.code, "name": r.name} | {k: getattr(r, k) for k in keys} for r in streets
        ],
        "departments": [
            {"department": r.department} | {k: getattr(r, k) for k in keys}
            for r in departments
            if any(getattr(r, k) for k in keys)
        ],
        "total": {k: sum(getattr(r, k) for r in streets) for k in keys},
    }


def evidence_photo(conn: Connection, folder: Path, hazard_id: int, name: str) -> tuple[Path, str]:
    """Where one evidence photo of a hazard is on disk, and its type; only a photo a step of this
    hazard names is served."""
    stored_as = f"{EVIDENCE_FOLDER}/{hazard_id}/{name}"
    row = conn.execute(
        text("""SELECT e ->> 'media_type' AS media_type FROM hazard_steps,
                    jsonb_array_elements(evidence) AS e
                WHERE hazard_id = :id AND e ->> 'stored_as' = :s LIMIT 1"""),
        {"id": hazard_id, "s": stored_as},
    ).first()
    path = folder / stored_as if row else None
    if path is None or not path.is_file():
        raise NotFound(f"hazard {hazard_id} has no photo {name}")
    return path, row.media_type
