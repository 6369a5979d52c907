"""Departmental tables in schema ``layers``: built beside the live one, then swapped in atomically.

One table per layer, ``layers.<layer_id>``: ``id bigint`` primary key (the record's row number in
the file, so that a feature and its report line share a number), the layer's standard fields, the
columns matching fills, and ``geom`` typed from the data (SRID 4490) with a GiST index and the
validity and non-emptiness CHECKs every stored geometry carries.

A re-ingest builds ``layers.<id>__new`` and fills it while readers keep reading the old table;
then, in the same transaction, drops the old table and renames the new one into its place.
Readers see the old layer until the commit and the new one after it, never a half-loaded one.
Table names come from declared layer ids, checked against ``^[a-z][a-z0-9_]{1,62}$`` and quoted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.settings import STORAGE_SRID
from geo.sql import ident
from geo.sql import table as sql_table
from layers.catalogue import Layer
from layers.declaration import SCHEMA

SQL_TYPES = {"text": "text", "integer": "bigint", "number": "double precision", "date": "date"}
#: what each match rule adds to the table
MATCH_COLUMNS = {
    "grid": (("grid_code", "text"),),
    "building": (("building_code", "text"), ("building_distance_m", "double precision")),
    "address": (
        ("address_code", "text"),
        ("address_match", "text"),
        ("address_distance_m", "double precision"),
    ),
}
COPY_CHUNK = 5_000


def new_name(layer_id: str) -> str:
    return f"{layer_id}__new"


def qualified(name: str) -> str:
    """``layers."name"``, checked and quoted (geo.sql)."""
    return sql_table(f"{SCHEMA}.{name}")


def lock(conn: Connection, layer_id: str) -> None:
    """One ingest of a layer at a time, across every process (released at commit or rollback)."""
    conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('onemap.ingest'), hashtext(:id))"),
        {"id": layer_id},
    )


def columns(spec: Layer) -> list[tuple[str, str]]:
    """The table's columns (name, SQL type) between ``id`` and ``geom``, in order."""
    cols = [(f.name, SQL_TYPES[f.type]) for f in spec.fields]
    for rule in spec.ingest.match:
        cols.extend(MATCH_COLUMNS[rule])
    return cols


def create_new(conn: Connection, spec: Layer, geometry_type: str) -> str:
    """Create ``layers.<id>__new`` (dropping a leftover) and return its qualified name."""
    name = new_name(spec.id)
    table = qualified(name)
    geometry_type = geometry_type.upper()
    if geometry_type not in (
        "POINT",
        "MULTIPOINT",
        "LINESTRING",
        "MULTILINESTRING",
        "POLYGON",
        "MULTIPOLYGON",
        "GEOMETRYCOLLECTION",
        "GEOMETRY",
    ):
        raise ValueError(f"unexpected geometry type {geometry_type}")
    body = ",\n    ".join(f"{ident(c)} {t}" for c, t in columns(spec))
    conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
    conn.execute(
        text(f"""
        CREATE TABLE {table} (
            id bigint NOT NULL,
            {body},
            geom geometry({geometry_type}, {STORAGE_SRID}) NOT NULL,
            CONSTRAINT {ident(name + "_pkey")} PRIMARY KEY (id),
            CONSTRAINT geom_valid CHECK (ST_IsValid(geom)),
            CONSTRAINT geom_not_empty CHECK (NOT ST_IsEmpty(geom))
        )""")
    )
    return table


def copy_rows(
    conn: Connection,
    table: str,
    spec: Layer,
    ids: Sequence[int],
    values: dict[str, list],
    geoms: np.ndarray,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """COPY the rows in (geometries as hex EWKB) on the caller's connection and transaction."""
    names = [f.name for f in spec.fields]
    # RFC 7946's winding (exterior rings counter-clockwise, holes clockwise), as the base tables'
    # trigger keeps it (migration 0007): tiles and exports inherit what is stored
    geoms = shapely.orient_polygons(geoms, exterior_cw=False)
    ewkb = shapely.to_wkb(shapely.set_srid(geoms, STORAGE_SRID), hex=True, include_srid=True)
    cols = ", ".join(["id", *(ident(n) for n in names), "geom"])
    raw = conn.connection.dbapi_connection
    total = len(ids)
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for k, row_id in enumerate(ids):
            copy.write_row([int(row_id), *(values[n][k] for n in names), ewkb[k]])
            if progress and (k + 1) % COPY_CHUNK == 0:
                progress(k + 1, total)
    if progress:
        progress(total, total)
    return total


def index_new(conn: Connection, spec: Layer) -> None:
    """The GiST index, built once the rows are in (faster than maintaining it row by row)."""
    name = new_name(spec.id)
    conn.execute(
        text(f"CREATE INDEX {ident(name + '_geom_idx')} ON {qualified(name)} USING gist (geom)")
    )
    conn.execute(text(f"ANALYZE {qualified(name)}"))


def count(conn: Connection, layer_id: str) -> int | None:
    """Features in the live table, or None if the layer has never been loaded."""
    exists = conn.execute(
        text("SELECT to_regclass(:name) IS NOT NULL"), {"name": f'{SCHEMA}."{layer_id}"'}
    ).scalar_one()
    if not exists:
        return None
    return conn.execute(text(f"SELECT count(*) FROM {qualified(layer_id)}")).scalar_one()


#: the whole of Web Mercator: a layer replaced as a whole invalidates every tile of it
WORLD = "ST_MakeEnvelope(-20037508.34, -20037508.34, 20037508.34, 20037508.34, 3857)"


def note_replaced(conn: Connection, layer_id: str) -> None:
    """Every cached tile of the layer is stale once this transaction commits (migration 0011)."""
    conn.execute(
        text(f"INSERT INTO tiles.invalidations (layer, envelope) VALUES (:layer, {WORLD})"),
        {"layer": layer_id},
    )


def swap(conn: Connection, layer_id: str) -> None:
    """Drop the live table and rename the new one (and its indexes) into its place."""
    note_replaced(conn, layer_id)
    new = new_name(layer_id)
    conn.execute(text(f"DROP TABLE IF EXISTS {qualified(layer_id)}"))
    conn.execute(text(f"ALTER TABLE {qualified(new)} RENAME TO {ident(layer_id)}"))
    conn.execute(
        text(f"ALTER INDEX {qualified(new + '_pkey')} RENAME TO {ident(layer_id + '_pkey')}")
    )
    conn.execute(
        text(
            f"ALTER INDEX {qualified(new + '_geom_idx')} RENAME TO {ident(layer_id + '_geom_idx')}"
        )
    )


def drop(conn: Connection, layer_id: str) -> bool:
    """Remove a departmental layer's table and catalogue entry; True if there was a table."""
    existed = count(conn, layer_id) is not None
    note_replaced(conn, layer_id)
    conn.execute(text(f"DROP TABLE IF EXISTS {qualified(layer_id)}"))
    conn.execute(
        text("DELETE FROM layer_catalogue WHERE id = :id AND table_name = :table"),
        {"id": layer_id, "table": f"{SCHEMA}.{layer_id}"},
    )
    return existed


def catalogue_owner(conn: Connection, layer_id: str) -> str | None:
    """The table a catalogue entry of this id points at, if there is one."""
    return conn.execute(
        text("SELECT table_name FROM layer_catalogue WHERE id = :id"), {"id": layer_id}
    ).scalar()
