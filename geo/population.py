"""How many people live where: from the person-level records where a building has them, from
the building's own counts (户数, 人数 handed over with it) where it has none.

A district that has not yet collected its residents one by one still gets every figure that
needs people (the check-up's per-capita indicators, the residents to alert around an alarm); each
figure says which source it used.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

RECORDS = "records"
COUNTS = "building counts"

#: per building: residents and dwellings, and where the numbers come from
PEOPLE_BY_BUILDING_SQL = f"""
    SELECT b.id, b.code, b.grid_code,
           CASE WHEN r.n > 0 THEN r.n ELSE coalesce(b.residents, 0) END AS residents,
           CASE WHEN h.n > 0 THEN h.n ELSE coalesce(b.dwellings, 0) END AS dwellings,
           CASE WHEN r.n > 0 THEN '{RECORDS}'
                WHEN b.residents IS NOT NULL THEN '{COUNTS}' ELSE 'none' END AS source
    FROM buildings b
    LEFT JOIN (SELECT h.building_id, count(*) AS n FROM residents p
               JOIN houses h ON h.id = p.house_id GROUP BY h.building_id) r
           ON r.building_id = b.id
    LEFT JOIN (SELECT building_id, count(*) AS n FROM houses WHERE use = 'dwelling'
               GROUP BY building_id) h ON h.building_id = b.id
"""


def people_by_building(conn: Connection):
    """Rows of (id, code, grid_code, residents, dwellings, source), one per building."""
    return conn.execute(text(PEOPLE_BY_BUILDING_SQL + " ORDER BY b.id")).all()


def people_in_district(conn: Connection) -> dict:
    """The district's residents and dwellings, with how many buildings each source counted."""
    row = conn.execute(
        text(f"""SELECT coalesce(sum(residents), 0), coalesce(sum(dwellings), 0),
                        count(*) FILTER (WHERE source = '{RECORDS}'),
                        count(*) FILTER (WHERE source = '{COUNTS}')
                 FROM ({PEOPLE_BY_BUILDING_SQL}) p""")
    ).one()
    return {
        "residents": int(row[0]),
        "dwellings": int(row[1]),
        "buildings_counted_from": {RECORDS: int(row[2]), COUNTS: int(row[3])},
    }
