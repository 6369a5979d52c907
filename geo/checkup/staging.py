"""What every indicator of a run reads, staged once per run in temporary tables, in metres
(the metric CRS) with spatial indexes, so that each radius test is an index search.

``ck_homes`` holds every building with its point, grid, H3 cell (resolution 9) and how many
dwellings and residents it holds: the house and resident records where they exist (person-level
data), otherwise the building's own 户数/人数 figures; ``dwellings_from``/``residents_from`` say
which. ``ck_facilities`` and ``ck_parks`` hold the facilities and the parks (公园绿地: scenic
areas, CJJ/T 85-2017 class EG1, are regional green space and left out).

A run for one area (a district of the city, a street, a community, a grid) stages only that area's
buildings and the people and houses in them, with a margin (``MARGIN_M``) around the area, so that
its cost follows the area's size and not the city's. Every figure stays the one the whole run gives
the area: the services, parks and roads are staged whole (a kindergarten across the boundary still
serves the homes near it), and an H3 cell counted in the area has all its homes inside the margin.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date

import h3
from sqlalchemy import text
from sqlalchemy.engine import Connection

#: H3 resolution the surface-like indicators are computed at (res 8 is its parent)
H3_FINE = 9

#: how far beyond an area's edge an area's run stages homes, in metres: an H3 cell of resolution 9
#: (edge 174 m, at most 350 m across) that counts in the area holds a home in it, so all of the
#: cell's homes lie within this distance of the area
MARGIN_M = 500

TEMPORARY = "ck_homes, ck_facilities, ck_parks, ck_cells, ck_scope"

#: the buildings of an area's run: those of its grids, and those within the margin of its shape
SCOPE = """
    CREATE TEMP TABLE ck_scope AS
        WITH shape AS (
            SELECT geom FROM admin_areas WHERE code = :area
            UNION ALL SELECT geom FROM grids WHERE code = :area),
        edge AS (
            SELECT ST_Subdivide(ST_Transform(ST_Buffer(ST_Transform(geom, :srid), :margin),
                                             ST_SRID(geom)), 128) AS geom
            FROM shape)
        SELECT id FROM buildings WHERE grid_code BETWEEN :lo AND :hi
        UNION
        SELECT b.id FROM buildings b JOIN edge ON ST_Intersects(b.geom, edge.geom)
"""

STAGING = """
    DROP TABLE IF EXISTS ck_homes, ck_facilities, ck_parks, ck_cells;
    CREATE TEMP TABLE ck_homes AS
        WITH in_houses AS (SELECT h.building_id, count(*) AS n FROM houses h
                           WHERE {houses_in_scope} GROUP BY h.building_id),
             in_people AS (SELECT h.building_id, count(*) AS n FROM residents r
                           JOIN houses h ON h.id = r.house_id
                           WHERE {houses_in_scope} GROUP BY h.building_id)
        SELECT b.id, b.use, b.year_built, b.estate, b.height_m, b.grid_code,
               ST_PointOnSurface(b.geom) AS point,
               ST_Transform(ST_PointOnSurface(b.geom), {srid}) AS at,
               coalesce(h.n, b.dwellings, 0) AS dwellings,
               CASE WHEN h.n IS NOT NULL THEN 'houses' ELSE 'buildings' END AS dwellings_from,
               coalesce(p.n, b.residents, 0) AS residents,
               CASE WHEN p.n IS NOT NULL THEN 'residents' ELSE 'buildings' END AS residents_from
        FROM buildings b
        LEFT JOIN in_houses h ON h.building_id = b.id
        LEFT JOIN in_people p ON p.building_id = b.id
        WHERE {buildings_in_scope};
    CREATE INDEX ON ck_homes USING gist (at);
    CREATE TEMP TABLE ck_facilities AS
        SELECT id, kind, area_m2, grid_code, ST_Transform(geom, {srid}) AS geom FROM facilities;
    CREATE INDEX ON ck_facilities USING gist (geom);
    CREATE TEMP TABLE ck_parks AS
        SELECT p.id, p.area_m2, ST_Transform(p.geom, {srid}) AS geom,
               (SELECT g.code FROM grids g WHERE ST_Intersects(g.geom, ST_PointOnSurface(p.geom))
                ORDER BY g.code LIMIT 1) AS grid_code
        FROM parks p WHERE p.kind IS DISTINCT FROM 'scenic';
    CREATE INDEX ON ck_parks USING gist (geom);
    CREATE TEMP TABLE ck_cells (id bigint PRIMARY KEY, h3_9 text NOT NULL);
"""


@dataclass
class Context:
    """One run's connection, day, metric CRS, each indicator's settings, and the code prefix of
    the area it runs for ('' for the whole district or city)."""

    conn: Connection
    as_of: date
    srid: int
    settings: dict[str, dict] = field(default_factory=dict)
    within: str = ""
    cache: dict = field(default_factory=dict)  # what several indicators share (land per grid)

    def of(self, indicator) -> dict:
        """The indicator's settings: its declared defaults under the city's overrides."""
        return {**indicator.settings, **self.settings.get(indicator.id, {})}

    def code_range(self, width: int) -> tuple[str, str]:
        """The first and last code of ``width`` digits inside the run's area (for an index)."""
        return code_range(self.within, width)

    def rows(self, sql: str, **params) -> list:
        return self.conn.execute(text(sql), {"srid": self.srid, **params}).all()


def code_range(prefix: str, width: int) -> tuple[str, str]:
    """The first and last code of ``width`` digits that start with ``prefix``."""
    return prefix.ljust(width, "0"), prefix.ljust(width, "9")


def stage(conn: Connection, srid: int, area: str | None = None, within: str = "") -> None:
    """Fill the run's temporary tables (dropped with the connection's session): for everything, or
    for an area (``area`` its code, ``within`` the prefix its codes share) its buildings and the
    margin around them."""
    scope = {"buildings_in_scope": "true", "houses_in_scope": "true"}
    conn.exec_driver_sql("DROP TABLE IF EXISTS ck_scope")
    if within:
        lo, hi = code_range(within, 15)
        conn.execute(
            text(SCOPE), {"area": area, "srid": int(srid), "margin": MARGIN_M, "lo": lo, "hi": hi}
        )
        conn.exec_driver_sql("ALTER TABLE ck_scope ADD PRIMARY KEY (id); ANALYZE ck_scope")
        scope = {
            "buildings_in_scope": "b.id IN (SELECT id FROM ck_scope)",
            "houses_in_scope": "h.building_id IN (SELECT id FROM ck_scope)",
        }
    conn.exec_driver_sql(STAGING.format(srid=int(srid), **scope))
    points = conn.execute(
        text("SELECT id, ST_Y(point), ST_X(point) FROM ck_homes WHERE grid_code IS NOT NULL")
    ).all()
    buffer = io.StringIO()
    for building, lat, lon in points:
        buffer.write(f"{building}\t{h3.latlng_to_cell(lat, lon, H3_FINE)}\n")
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor, cursor.copy("COPY ck_cells (id, h3_9) FROM STDIN") as copy:
        copy.write(buffer.getvalue())
    conn.execute(
        text("ANALYZE ck_homes; ANALYZE ck_facilities; ANALYZE ck_parks; ANALYZE ck_cells")
    )


def basis(sources: dict[str, int], unit: str) -> str:
    """Which counts a result used: ``{"houses": 120, "buildings": 3}`` → a sentence."""
    used = {k: v for k, v in sources.items() if v}
    if not used:
        return f"no {unit}"
    if len(used) == 1:
        (source,) = used
        return f"{unit} from {'the ' + source + ' records' if source != 'buildings' else 'the buildings’ own counts'}"
    parts = ", ".join(f"{n:,} buildings from {k}" for k, n in sorted(used.items()))
    return f"{unit}: {parts}"
