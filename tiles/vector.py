"""Mapbox Vector Tiles from PostGIS for one layer, as the caller's read plan allows.

One statement per tile: the rows whose geometry meets the tile (buffered, so that a feature on
the edge is drawn on both sides), in the caller's visible rows, with the served non-personal
properties; geometry moved to Web Mercator, simplified to the tile's resolution below the detail
zoom, clipped and quantised by ST_AsMVTGeom, encoded by ST_AsMVT. Points are thinned below the
detail zoom (one per few pixels, carrying how many it stands for), and every tile holds at most
``max_features`` features: a fuller tile says so (``truncated``) rather than pretending.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, literal, literal_column, select
from sqlalchemy.engine import Connection

from geo.policy.plan import ReadPlan
from geo.settings import STORAGE_SRID
from layers.catalogue import Layer
from layers.features import tile_source
from tiles.matrix import Tile

EXTENT = 4096  # the tile's integer grid
BUFFER = 64  # grid units drawn beyond each edge (1/64 of the tile)
DETAIL_ZOOM = 14  # from here on, every feature as it is
THIN_CELLS = 64  # below the detail zoom, at most one point per 1/64 × 1/64 of the tile
MAX_FEATURES = 20_000


@dataclass(frozen=True)
class LayerTile:
    layer: str
    data: bytes
    features: int
    truncated: bool


def layer_tile(
    conn: Connection, layer: Layer, plan: ReadPlan, tile: Tile, max_features: int = MAX_FEATURES
) -> LayerTile:
    """The layer's features in ``tile`` as one MVT layer named by the layer's id."""
    geom_name = layer.geometry_field
    if geom_name is None:
        return LayerTile(layer.id, b"", 0, False)
    t, visible, properties = tile_source(layer, plan)
    west, south, east, north = tile.bounds
    pad = tile.size_m * BUFFER / EXTENT
    envelope = func.ST_MakeEnvelope(west, south, east, north, 3857)
    reach = func.ST_Transform(
        func.ST_MakeEnvelope(west - pad, south - pad, east + pad, north + pad, 3857),
        STORAGE_SRID,
    )
    mercator = func.ST_Transform(t.c[geom_name], 3857)
    pixel = tile.size_m / EXTENT
    is_point = (layer.geometry_type or "").upper().endswith("POINT")
    if tile.z < DETAIL_ZOOM and not is_point:
        mercator = func.ST_Simplify(mercator, pixel, True)
    shape = func.ST_AsMVTGeom(mercator, envelope, EXTENT, BUFFER, True)
    columns = [t.c[layer.id_field].label("id"), *(e.label(n) for n, e in properties)]
    where = and_(func.ST_Intersects(t.c[geom_name], reach), *visible)
    if is_point and tile.z < DETAIL_ZOOM:
        cell = func.ST_SnapToGrid(func.ST_Transform(t.c[geom_name], 3857), tile.size_m / THIN_CELLS)
        ranked = (
            select(
                *columns,
                shape.label("geom"),
                func.row_number().over(partition_by=cell, order_by=t.c[layer.id_field]).label("_n"),
                func.count().over(partition_by=cell).label("point_count"),
            )
            .where(where)
            .subquery("ranked")
        )
        kept = [ranked.c[c.name] for c in columns] + [ranked.c.point_count, ranked.c.geom]
        rows = select(*kept).where(ranked.c._n == 1)
        order = ranked.c.id
    else:
        rows = select(*columns, shape.label("geom")).where(where)
        order = t.c[layer.id_field]
    data, n = _encode(conn, rows, layer.id, max_features + 1)
    if n <= max_features:
        return LayerTile(layer.id, data, n, False)
    # fuller than the cap: the first features by id, and say so
    data, n = _encode(conn, rows.order_by(order), layer.id, max_features)
    return LayerTile(layer.id, data, n, True)


def _encode(conn: Connection, rows, name: str, limit: int) -> tuple[bytes, int]:
    """One pass: the rows (at most ``limit``) whose shape survives clipping, as one MVT layer,
    and how many there are."""
    found = rows.limit(limit).subquery("found")
    drawn = select(found).where(found.c.geom.is_not(None)).subquery("drawn")
    statement = select(
        func.ST_AsMVT(literal_column("drawn"), literal(name), EXTENT, "geom", "id"), func.count()
    ).select_from(drawn)
    data, n = conn.execute(statement).one()
    return bytes(data or b""), int(n)


def describe(plan: ReadPlan, layer: Layer) -> dict:
    """The TileJSON ``vector_layers`` entry: the fields this caller's tiles carry."""
    _, _, properties = tile_source(layer, plan)
    fields = {name: _tilejson_type(layer, name) for name, _ in properties}
    return {"id": layer.id, "description": layer.title_zh, "fields": fields}


def _tilejson_type(layer: Layer, name: str) -> str:
    column = next((c for c in layer.columns if c["name"] == name), {})
    return {"integer": "Number", "number": "Number", "boolean": "Boolean"}.get(
        column.get("type"), "String"
    )
