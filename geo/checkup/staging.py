"""What every indicator of a run reads, staged once per run in temporary tables, in metres
(the metric CRS) with spatial indexes, so that each radius test is an index search.

``ck_homes`` holds every building with its point, grid, H3 cell (resolution 9) and how many
dwellings and residents it holds: the house and resident records where they exist (person-level
data), otherwise the building's own 户数/人数 figures; ``dwellings_from``/``residents_from`` say
which. ``ck_facilities`` and ``ck_parks`` hold the facilities and the parks (公园绿地: scenic
areas, CJJ/T 85-2017 class EG1, are regional green space and left out).
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

STAGING = """
    DROP TABLE IF EXISTS ck_homes, ck_facilities, ck_parks, ck_cells;
    CREATE TEMP TABLE ck_homes AS
        WITH in_houses AS (SELECT building_id, count(*) AS n FROM houses GROUP BY building_id),
             in_people AS (SELECT h.building_id, count(*) AS n FROM residents r
                           JOIN houses h ON h.id = r.house_id GROUP BY h.building_id)
        SELECT b.id, b.use, b.year_built, b.estate, b.height_m, b.grid_code,
               ST_PointOnSurface(b.geom) AS point,
               ST_Transform(ST_PointOnSurface(b.geom), {srid}) AS at,
               coalesce(h.n, b.dwellings, 0) AS dwellings,
               CASE WHEN h.n IS NOT NULL THEN 'houses' ELSE 'buildings' END AS dwellings_from,
               coalesce(p.n, b.residents, 0) AS residents,
               CASE WHEN p.n IS NOT NULL THEN 'residents' ELSE 'buildings' END AS residents_from
        FROM buildings b
        LEFT JOIN in_houses h ON h.building_id = b.id
        LEFT JOIN in_people p ON p.building_id = b.id;
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
    """One run's connection, day, metric CRS and each indicator's settings."""

    conn: Connection
    as_of: date
    srid: int
    settings: dict[str, dict] = field(default_factory=dict)
    cache: dict = field(default_factory=dict)  # what several indicators share (land per grid)

    def of(self, indicator) -> dict:
        """The indicator's settings: its declared defaults under the city's overrides."""
        return {**indicator.settings, **self.settings.get(indicator.id, {})}

    def rows(self, sql: str, **params) -> list:
        return self.conn.execute(text(sql), {"srid": self.srid, **params}).all()


def stage(conn: Connection, srid: int) -> None:
    """Fill the run's temporary tables (dropped with the connection's session)."""
    conn.exec_driver_sql(STAGING.format(srid=int(srid)))
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
