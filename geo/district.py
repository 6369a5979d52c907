"""The district's base tables as one whole: their load order, columns, contents' checksums, and
the COPY that fills them.

The demo city, the district import and the district export all work on this one list, so that a
district loaded any way is compared (checksums) and replaced (TRUNCATE … CASCADE) the same way.
Several districts side by side (a city): one of them is replaced by deleting its rows only
(``delete``), and a district loaded beside others has its ids moved past theirs (``id_references``
names every column that holds another row's id).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import pandas as pd
import shapely
from sqlalchemy import Table, text
from sqlalchemy.engine import Connection

from geo.errors import BadRequest
from geo.models import Base
from geo.settings import STORAGE_SRID

#: the base tables, parents before children
TABLES = (
    "admin_areas",
    "grids",
    "buildings",
    "addresses",
    "houses",
    "residents",
    "organisations",
    "facilities",
    "landuse_parcels",
    "roads",
    "water",
    "parks",
    "hazards",
    "inspections",
    "sensors",
    "sensor_readings",
    "assets",
    "asset_status_history",
)
#: columns that say when and how often a row changed, not what it holds
BOOKKEEPING = ("created_at", "updated_at", "version")
#: what officers and grid workers add as they work, not the district's base data: an inspection's
#: route (a second geometry no exchange format carries beside the point), and who last verified
#: a record on patrol and when
WORKING = ("route", "verified_at", "verified_by")
CHUNK_ROWS = 100_000
#: tables with no division code of their own: a district's rows are those with a point in it
SPATIAL = ("landuse_parcels", "roads", "water", "parks")
#: tables whose rows are never changed or removed (a trigger refuses it), unless their district is
APPEND_ONLY = ("asset_status_history",)
#: tables whose rows belong to a district through their parent's id
THROUGH = {
    "sensor_readings": ("sensor_id", "sensors"),
    "asset_status_history": ("asset_id", "assets"),
}


def table(name: str) -> Table:
    return Base.metadata.tables[name]


def columns(name: str) -> list[str]:
    """The columns of a base table that hold its content, in the table's order."""
    return [c.name for c in table(name).columns if c.name not in BOOKKEEPING + WORKING]


def counts(conn: Connection) -> dict[str, int]:
    return {
        name: int(conn.execute(text(f"SELECT count(*) FROM {name}")).scalar_one())
        for name in TABLES
    }


def checksums(conn: Connection) -> tuple[dict[str, int], dict[str, str], str]:
    """Row counts and a content checksum of every base table, and of the district as a whole.

    Each table hashes its rows in key order (timestamps and versions left out); the district's
    checksum hashes the tables' in load order. The same content gives the same checksums, however
    it was loaded.
    """
    rows: dict[str, int] = {}
    sums: dict[str, str] = {}
    for name in TABLES:
        cols = columns(name)
        order = "id" if "id" in cols else ", ".join(_quote(c) for c in cols[:2])
        row = conn.execute(
            text(
                f"SELECT count(*), coalesce(md5(string_agg(md5(ROW("
                f"{', '.join(_quote(c) for c in cols)})::text), '' ORDER BY {order})), '') "
                f"FROM {name}"
            )
        ).one()
        rows[name], sums[name] = int(row[0]), row[1]
    digest = hashlib.sha256("".join(sums[n] for n in TABLES).encode()).hexdigest()
    return rows, sums, digest


def loaded(conn: Connection) -> dict[str, str]:
    """The districts loaded: 12-digit code → name."""
    rows = conn.execute(text("SELECT code, name FROM admin_areas WHERE level = 1 ORDER BY code"))
    return dict(rows.all())


def rows_of(name: str) -> str:
    """Which rows of a base table are one district's, as SQL: ``:d`` its six digits, ``:code``
    its twelve. A row with a division code is its district's; roads, water, land use and parks,
    which have none, belong where their point on surface lies; readings and status history follow
    their sensor and asset."""
    if name in THROUGH:
        column, parent = THROUGH[name]
        return f"{column} IN (SELECT id FROM {parent} WHERE district_code = :d)"
    if name in SPATIAL:
        return (
            "ST_Intersects((SELECT geom FROM admin_areas WHERE code = :code), "
            "ST_PointOnSurface(geom))"
        )
    return "district_code = :d"


def district_params(code: str) -> dict[str, str]:
    """The parameters ``rows_of`` takes, for a district's code (six digits or twelve)."""
    return {"d": code[:6], "code": code[:6].ljust(12, "0")}


def choose(conn: Connection, wanted: str | None) -> tuple[str | None, str | None, bool]:
    """The district a one-district job works on: ``wanted`` (six or twelve digits), or the one
    loaded; its 12-digit code, its name, and whether others are loaded beside it. Several loaded
    and none named, or one named that is not loaded: a BadRequest listing those loaded."""
    loaded_now = loaded(conn)
    listed = ", ".join(f"{c[:6]} {n}" for c, n in loaded_now.items()) or "none"
    if wanted is None:
        if len(loaded_now) > 1:
            raise BadRequest(f"several districts are loaded ({listed}): name one with --district")
        code, name = next(iter(loaded_now.items()), (None, None))
        return code, name, False
    code = wanted[:6].ljust(12, "0")
    if code not in loaded_now:
        raise BadRequest(f"no district {wanted} is loaded; loaded: {listed}")
    return code, loaded_now[code], len(loaded_now) > 1


def delete(conn: Connection, code: str) -> dict[str, int]:
    """Delete one district's rows from every base table, children first, in the caller's
    transaction; the other districts' rows stay. Returns the rows deleted, by table."""
    params = district_params(code)
    deleted = {}
    for name in reversed(TABLES):
        guarded = name in APPEND_ONLY  # history kept forever, but not beyond its district
        if guarded:
            conn.execute(text(f"ALTER TABLE {name} DISABLE TRIGGER {name}_append_only"))
        deleted[name] = conn.execute(
            text(f"DELETE FROM {name} WHERE {rows_of(name)}"), params
        ).rowcount
        if guarded:
            conn.execute(text(f"ALTER TABLE {name} ENABLE TRIGGER {name}_append_only"))
    return deleted


def last_ids(conn: Connection) -> dict[str, int]:
    """The largest id of each base table that has one (0 when empty)."""
    return {
        name: int(conn.execute(text(f"SELECT coalesce(max(id), 0) FROM {name}")).scalar_one())
        for name in TABLES
        if "id" in columns(name)
    }


def id_references(name: str) -> dict[str, str]:
    """The columns of a base table that hold the id of another base table's row → that table."""
    out = {
        fk.parent.name: fk.column.table.name
        for fk in table(name).foreign_keys
        if fk.column.name == "id" and fk.column.table.name in TABLES
    }
    if name in THROUGH:  # the readings' sensor: no foreign key (migration 0018), still an id
        column, parent = THROUGH[name]
        out[column] = parent
    return out


def truncate(conn: Connection) -> None:
    """Empty every base table (and what refers to them) inside the caller's transaction; readers
    keep seeing the old district until commit (TRUNCATE holds its lock until then)."""
    conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))


def copy_frame(
    conn: Connection,
    name: str,
    frame: pd.DataFrame,
    cols: list[str],
    target: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """COPY a frame's ``cols`` into ``target`` (default: the table ``name``), in chunks."""
    sql = (
        f"COPY {target or name} ({', '.join(_quote(c) for c in cols)}) FROM STDIN WITH (FORMAT csv)"
    )
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor, cursor.copy(sql) as copy:
        for start in range(0, len(frame), CHUNK_ROWS):
            chunk = csv_ready(frame.iloc[start : start + CHUNK_ROWS][cols])
            buf = io.StringIO()
            chunk.to_csv(buf, index=False, header=False)
            copy.write(buf.getvalue())
            if progress:
                progress(len(chunk))


def reset_ids(conn: Connection, names=TABLES) -> None:
    """Each id sequence past the largest id, so that the next insert does not collide."""
    for name in names:
        if "id" in columns(name):
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"coalesce(max(id), 0) + 1, false) FROM {name}"
                )
            )


def csv_ready(df: pd.DataFrame) -> pd.DataFrame:
    """Values as PostgreSQL reads them in CSV: hex EWKB geometries, array literals."""
    df = df.copy()
    if "geom" in df:
        present = df.geom.notna().to_numpy()
        geoms = df.geom.to_numpy()
        out = pd.Series([None] * len(df), index=df.index, dtype=object)
        if present.any():
            with_srid = shapely.set_srid(geoms[present], STORAGE_SRID)
            out[present] = shapely.to_wkb(with_srid, hex=True, include_srid=True)
        df["geom"] = out
    if "aliases" in df:
        df["aliases"] = [
            "{" + ",".join('"' + a.replace("\\", "\\\\").replace('"', '\\"') + '"' for a in v) + "}"
            for v in df.aliases
        ]
    return df


def _quote(column: str) -> str:
    return f'"{column}"'
