"""Which district a read is confined to: the one a user is bound to (``users.district_code``),
or the one a whole-city caller names with ``?district=``. The read plan carries it as a row rule
(geo.policy.plan); routes that read rows by themselves ask :func:`sees_code`."""

from __future__ import annotations

import re
from dataclasses import replace

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo import district
from geo.errors import BadRequest, Forbidden, NotFound
from geo.policy.roles import Viewer


def known_districts(conn: Connection) -> dict[str, str]:
    """The districts loaded (district-level divisions): 6-digit code → name."""
    return {code[:6]: name for code, name in district.loaded(conn).items()}


def districts_with_extent(conn: Connection) -> list[dict]:
    """:func:`known_districts`, each with its bounding box (lon/lat), for a page to fit to one."""
    boxes = conn.execute(
        text("""SELECT left(code, 6), ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)
                FROM (SELECT code, ST_Extent(geom) AS e FROM admin_areas
                      WHERE level = 1 GROUP BY code) AS x""")
    )
    bbox = {code: [round(v, 6) for v in box] for code, *box in boxes}
    return [
        {"code": code, "name": name, "bbox": bbox[code]}
        for code, name in known_districts(conn).items()
    ]


def check_district(conn: Connection, value: str) -> str:
    """``value`` as a known district's 6-digit code, or a 400 naming the known ones."""
    value = (value or "").strip()
    known = known_districts(conn)
    listed = ", ".join(f"{code} {name}" for code, name in known.items()) or "none loaded"
    if not re.fullmatch(r"\d{6}", value):
        raise BadRequest(f"district must be a 6-digit district code; the districts are: {listed}")
    if value not in known:
        raise BadRequest(f"no district {value}: the districts are {listed}")
    return value


def narrowed(conn: Connection, who: Viewer, district: str | None) -> Viewer:
    """The caller confined to ``district`` (``?district=``): a whole-city caller may name any
    known district, a district-bound one only their own (another is a 403). None: as they are."""
    if district is None:
        return who
    district = check_district(conn, district)
    if who.district is not None and who.district != district:
        raise Forbidden(
            f"you work in district {who.district}: district {district}'s data is not yours to read"
        )
    return replace(who, district=district)


def sees_code(who: Viewer, code: str | None) -> bool:
    """Whether a row with this division code (or district code) is in the caller's district."""
    return who.district is None or (code or "")[:6] == who.district


def must_see(who: Viewer, code: str | None, what: str) -> None:
    """A single thing of another district is, for a district-bound caller, missing (404)."""
    if not sees_code(who, code):
        raise NotFound(f"no {what}")


def must_see_row(conn: Connection, who: Viewer, table: str, row_id: int, what: str) -> None:
    """:func:`must_see` for a row known by its id (a table with a ``district_code`` column)."""
    if who.district is not None:
        code = conn.execute(
            text(f"SELECT district_code FROM {table} WHERE id = :id"), {"id": row_id}
        ).scalar()
        must_see(who, code, what)


def district_grids(conn: Connection, district: str) -> frozenset[str]:
    """The codes of a district's grids (for paths that confine rows to a set of grids)."""
    rows = conn.execute(text("SELECT code FROM grids WHERE district_code = :d"), {"d": district})
    return frozenset(r[0] for r in rows)
