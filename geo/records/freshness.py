"""Freshness for the office (网格数据鲜活度): per grid, community or street, how much of the
四标四实 data someone has looked at lately, so that stale grids can be coloured and chased.

The figures, defined once (``now`` is a parameter, so any past day can be told):

* ``records``: the records of the six types lying in the area (by their ``grid_code``);
* ``verified_N``: those whose ``verified_at`` lies in [now − N days, now]; ``edited_N``: whose
  ``updated_at`` does (it moves on every change of content, never on a verification);
  ``fresh_N``: either; ``share_N`` = fresh_N / records (None for an area with no records), N = 30
  and 90;
* ``patrols_per_worker_week`` = the patrols started in [now − 28 days, now) whose grids include
  one of the area's, ÷ the active grid workers bound to the area's grids, ÷ 4 (None when no worker
  is bound there); an administrator's patrol covers no grid and is not counted;
* ``oldest_unverified``: up to OLDEST records per area not verified in the last 90 days, the
  longest untouched first (``last_touched`` = the later of ``updated_at`` and ``verified_at``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest, Forbidden, Unauthorised
from geo.policy.roles import Viewer

LEVELS = ("grid", "community", "street")
LEVEL_ZH = {"grid": "网格", "community": "社区", "street": "街道"}
RECORD_TABLES = ("buildings", "addresses", "houses", "residents", "organisations", "facilities")
WINDOWS = (30, 90)
PATROL_WEEKS = 4
OLDEST = 5
#: who reads freshness: the office everywhere, a grid worker their own grids
READERS = ("planner", "admin", "safety", "grid_worker")
#: the area a grid counts towards, at each level (g: grids, c: its community)
_AREA = {"grid": "g.code", "community": "g.community_code", "street": "c.parent_code"}


def _scope(viewer: Viewer) -> list[str] | None:
    if viewer.role not in READERS:
        if viewer.anonymous:
            raise Unauthorised("请先登录: sign in to read data freshness")
        raise Forbidden(f"your role '{viewer.role}' may not read data freshness")
    return sorted(viewer.grids) if viewer.role == "grid_worker" else None


def freshness(conn: Connection, level: str, now: datetime, viewer: Viewer) -> dict:
    """The freshness of every area of ``level`` (a grid worker: the areas of their grids,
    counting their grids only; a district-bound reader: their district's)."""
    if level not in LEVELS:
        raise BadRequest(f"level {level!r}: choose one of {', '.join(LEVELS)}")
    if now.tzinfo is None:
        raise BadRequest("now has no zone")
    own = _scope(viewer)
    area = _AREA[level]
    records = " UNION ALL ".join(
        f"SELECT '{t}' AS type, id, grid_code, updated_at, verified_at FROM {t}"
        for t in RECORD_TABLES
    )
    counts = ", ".join(
        f"""count(*) FILTER (WHERE r.verified_at BETWEEN :since_{n} AND :now) AS verified_{n},
            count(*) FILTER (WHERE r.updated_at BETWEEN :since_{n} AND :now) AS edited_{n},
            count(*) FILTER (WHERE r.verified_at BETWEEN :since_{n} AND :now
                                OR r.updated_at BETWEEN :since_{n} AND :now) AS fresh_{n}"""
        for n in WINDOWS
    )
    params = {
        "now": now,
        "own": own,
        "district": viewer.district,  # a district-bound reader: their district's grids only
        "weeks_ago": now - timedelta(weeks=PATROL_WEEKS),
        "oldest": OLDEST,
        **{f"since_{n}": now - timedelta(days=n) for n in WINDOWS},
    }
    # the area of every grid in scope: areas with no records still get a row
    grids = f"""SELECT CAST(g.code AS text) AS grid, CAST({area} AS text) AS area
                FROM grids g JOIN admin_areas c ON c.code = g.community_code
                WHERE (CAST(:own AS text[]) IS NULL OR g.code = ANY(CAST(:own AS text[])))
                  AND (CAST(:district AS text) IS NULL OR g.district_code = :district)"""
    rows = conn.execute(
        text(f"""WITH ag AS ({grids}),
            rec AS ({records}),
            r AS (SELECT rec.*, ag.area FROM rec JOIN ag ON ag.grid = rec.grid_code),
            figures AS (SELECT r.area, count(*) AS records, {counts} FROM r GROUP BY r.area),
            walked AS (SELECT ag.area, count(DISTINCT p.id) AS patrols FROM patrols p
                       JOIN ag ON ag.grid = ANY(CAST(p.grid_codes AS text[]))
                       WHERE p.started_at >= :weeks_ago AND p.started_at < :now
                       GROUP BY ag.area),
            walkers AS (SELECT ag.area, count(DISTINCT u.id) AS workers FROM user_grids ug
                        JOIN users u ON u.id = ug.user_id AND u.active AND u.role = 'grid_worker'
                        JOIN ag ON ag.grid = ug.grid_code GROUP BY ag.area),
            areas AS (SELECT DISTINCT area FROM ag)
            SELECT a.area AS code, coalesce(f.records, 0) AS records,
                   {", ".join(f"coalesce(f.{k}_{n}, 0) AS {k}_{n}" for n in WINDOWS for k in ("verified", "edited", "fresh"))},
                   coalesce(w.patrols, 0) AS patrols, coalesce(k.workers, 0) AS workers
            FROM areas a LEFT JOIN figures f USING (area) LEFT JOIN walked w USING (area)
                 LEFT JOIN walkers k USING (area)
            ORDER BY a.area"""),
        params,
    ).mappings()
    areas = [_area(dict(r), level) for r in rows]
    names = _names(conn, level, [a["code"] for a in areas])
    oldest = _oldest(conn, grids, records, params)
    for a in areas:
        a["name"] = names.get(a["code"])
        a["oldest_unverified"] = oldest.get(a["code"], [])
    return {
        "level": level,
        "level_zh": LEVEL_ZH[level],
        "now": now.isoformat(),
        "scope": "own grids" if own is not None else "district",
        "definitions": {
            "fresh_N": "verified_at or updated_at within [now − N days, now]",
            "share_N": "fresh_N / records",
            "patrols_per_worker_week": (
                f"patrols started in the last {PATROL_WEEKS} weeks covering the area's grids "
                f"÷ active grid workers bound to them ÷ {PATROL_WEEKS}"
            ),
            "oldest_unverified": "not verified in 90 days, least recently touched first",
        },
        "areas": areas,
    }


def _area(row: dict, level: str) -> dict:
    out = {"code": row["code"], "level": level, "records": row["records"]}
    for n in WINDOWS:
        for k in ("verified", "edited", "fresh"):
            out[f"{k}_{n}"] = row[f"{k}_{n}"]
        out[f"share_{n}"] = round(row[f"fresh_{n}"] / row["records"], 4) if row["records"] else None
    out["patrols_4w"] = row["patrols"]
    out["workers"] = row["workers"]
    out["patrols_per_worker_week"] = (
        round(row["patrols"] / row["workers"] / PATROL_WEEKS, 3) if row["workers"] else None
    )
    return out


def _names(conn: Connection, level: str, codes: list[str]) -> dict[str, str]:
    table = "grids" if level == "grid" else "admin_areas"
    rows = conn.execute(
        text(f"SELECT CAST(code AS text), name FROM {table} WHERE code = ANY(:codes)"),
        {"codes": codes},
    )
    return dict(rows.all())


def _oldest(conn: Connection, grids: str, records: str, params: dict) -> dict[str, list[dict]]:
    rows = conn.execute(
        text(f"""WITH ag AS ({grids}), rec AS ({records}),
            ranked AS (
                SELECT ag.area, rec.type, rec.id, rec.grid_code, rec.verified_at,
                       greatest(rec.updated_at, rec.verified_at) AS last_touched,
                       row_number() OVER (PARTITION BY ag.area
                           ORDER BY greatest(rec.updated_at, rec.verified_at), rec.type, rec.id) AS n
                FROM rec JOIN ag ON ag.grid = rec.grid_code
                WHERE rec.verified_at IS NULL OR rec.verified_at < :since_90)
            SELECT * FROM ranked WHERE n <= :oldest ORDER BY area, n"""),
        params,
    )
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r.area, []).append(
            {
                "type": r.type,
                "id": r.id,
                "grid_code": r.grid_code,
                "last_touched": r.last_touched.isoformat(),
                "verified_at": r.verified_at.isoformat() if r.verified_at else None,
            }
        )
    return out


def as_layer(conn: Connection, figures: dict) -> dict:
    """The figures as a GeoJSON layer of the areas' outlines, for colouring by ``share_30``/``share_90``
    (the oldest records stay in the JSON answer)."""
    level = figures["level"]
    table = "grids" if level == "grid" else "admin_areas"
    shapes = dict(
        conn.execute(
            text(f"""SELECT CAST(code AS text), ST_AsGeoJSON(geom, 7) FROM {table}
                     WHERE code = ANY(:codes)"""),
            {"codes": [a["code"] for a in figures["areas"]]},
        ).all()
    )
    features = [
        {
            "type": "Feature",
            "id": a["code"],
            "geometry": orjson.loads(shapes[a["code"]]) if a["code"] in shapes else None,
            "properties": {k: v for k, v in a.items() if k != "oldest_unverified"}
            | {"oldest_unverified": len(a["oldest_unverified"])},
        }
        for a in figures["areas"]
    ]
    return {
        "type": "FeatureCollection",
        "name": f"freshness_{level}",
        "title": f"{LEVEL_ZH[level]}数据鲜活度 data freshness by {level}",
        "now": figures["now"],
        "features": features,
    }
