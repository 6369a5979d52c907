"""The generic read path of every catalogued layer: OGC API – Features Core, CRS (Part 2) and
filtering (Part 3), with personal data masked by role.

PostgreSQL builds each feature's GeoJSON text (``json_build_object`` + ``ST_AsGeoJSON``), so
Python only joins bytes; SQL is composed with SQLAlchemy expressions and bound parameters, never
formatted from user input. Nothing here knows HTTP: routes translate requests to :class:`ItemQuery`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    Text,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    select,
    table,
    text,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from geo.access import Viewer, may_list, may_see_internal, may_see_personal, row_rule
from geo.settings import STORAGE_SRID
from layers import cql
from layers.catalogue import NEVER_SERVED

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_URI = "http://www.opengis.net/def/crs/EPSG/0/{}"
#: output CRSs: URI → (SRID, swap axes to the CRS's own lat/lon order, decimals)
OUTPUT_CRS = {
    CRS84: (4326, False, 7),
    EPSG_URI.format(4490): (4490, True, 7),
    EPSG_URI.format(4326): (4326, True, 7),
    EPSG_URI.format(3857): (3857, False, 2),
}
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 10
SQL_TYPES = {"integer": BigInteger, "number": Float, "boolean": Boolean, "string": String}
MASK_FUNCTIONS = {
    "phone": "onemap_mask_phone",
    "id_number": "onemap_mask_id_number",
    "name": "onemap_mask_name",
}


class QueryError(ValueError):
    """A request the layer cannot answer as asked (400): the message says what to fix."""


class NotFound(LookupError):
    """No such layer or feature (404)."""


class Forbidden(PermissionError):
    """The caller's role may not have what it asked for (403)."""


@dataclass(frozen=True)
class Layer:
    """A catalogue entry as the read path needs it."""

    id: str
    table: str
    title_zh: str
    title_en: str
    description: str | None
    department: str
    fields: list[dict]
    personal: dict[str, str]
    internal: frozenset[str]
    opening_level: str
    sharing_level: str
    time_field: str | None
    extent: list[float] | None
    feature_count: int | None
    geometry_type: str | None
    last_loaded: datetime | None
    source_crs: str | None
    update_frequency: str | None

    @property
    def geometry_field(self) -> str | None:
        return next((f["name"] for f in self.fields if f.get("geometry_type")), None)

    @property
    def id_field(self) -> str:
        return "id"

    def property_fields(self, viewer: Viewer) -> list[dict]:
        """The fields a viewer may receive as properties (internal ones only if allowed)."""
        hidden = set(NEVER_SERVED) | {self.id_field}
        if not may_see_internal(viewer, self.id):
            hidden |= self.internal
        return [f for f in self.fields if not f.get("geometry_type") and f["name"] not in hidden]


_LAYER_SQL = """
    SELECT id, table_name, title_zh, title_en, description, department, fields, personal_fields,
           internal_fields, opening_level, sharing_level, time_field, extent, feature_count,
           geometry_type, last_loaded, source_crs, update_frequency
    FROM layer_catalogue
"""


def _layer(row) -> Layer:
    personal = {
        f["name"]: f.get("personal", "name") for f in row.fields if f["name"] in row.personal_fields
    }
    for name in row.personal_fields:
        personal.setdefault(name, "name")
    return Layer(
        id=row.id,
        table=row.table_name,
        title_zh=row.title_zh,
        title_en=row.title_en,
        description=row.description,
        department=row.department,
        fields=row.fields,
        personal=personal,
        internal=frozenset(row.internal_fields),
        opening_level=row.opening_level,
        sharing_level=row.sharing_level,
        time_field=row.time_field,
        extent=row.extent,
        feature_count=row.feature_count,
        geometry_type=row.geometry_type,
        last_loaded=row.last_loaded,
        source_crs=row.source_crs,
        update_frequency=row.update_frequency,
    )


def list_layers(conn: Connection, viewer: Viewer) -> list[Layer]:
    """Layers the viewer may know of (closed ones are hidden from anonymous callers)."""
    return [
        layer
        for layer in map(_layer, conn.execute(text(f"{_LAYER_SQL} ORDER BY id")))
        if may_list(viewer, layer.opening_level)
    ]


def get_layer(conn: Connection, layer_id: str, viewer: Viewer) -> Layer:
    """One layer, read afresh: every process sees a re-ingested layer's new fields at once."""
    row = conn.execute(text(f"{_LAYER_SQL} WHERE id = :id"), {"id": layer_id}).first()
    if row is not None and may_list(viewer, row.opening_level):
        return _layer(row)
    raise NotFound(f"no collection '{layer_id}': see /collections for the layers you may read")


# --- the query --------------------------------------------------------------------------------


@dataclass
class ItemQuery:
    """What a caller asked of a layer's items, already split into plain values."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0
    bbox: tuple[float, float, float, float] | None = None
    bbox_crs: str = CRS84
    filter: str | None = None
    filter_lang: str = "cql2-text"
    filter_crs: str = CRS84
    properties: list[str] | None = None
    sortby: list[tuple[str, bool]] = field(default_factory=list)  # (field, ascending)
    datetime: tuple[datetime | None, datetime | None] | None = None
    crs: str = CRS84
    unmask: frozenset[str] = frozenset()  # personal fields the policy lets this caller see raw
    unmask_grids: frozenset[str] | None = None  # ... only in these grids (None: everywhere)


@dataclass
class ItemPage:
    features: list[bytes]
    number_matched: int
    number_returned: int
    has_next: bool


def _sql_table(layer: Layer):
    schema, _, name = layer.table.rpartition(".")
    cols = []
    for f in layer.fields:
        if f.get("geometry_type"):
            cols.append(column(f["name"], Geometry(srid=STORAGE_SRID)))
        elif f.get("db_type") == "timestamp with time zone":
            cols.append(column(f["name"], DateTime(timezone=True)))
        elif f.get("db_type") == "date":
            cols.append(column(f["name"], Date))
        elif f.get("db_type") in ("integer", "smallint"):
            cols.append(column(f["name"], Integer))
        else:
            cols.append(column(f["name"], SQL_TYPES.get(f["type"], String)))
    return table(name, *cols, schema=schema or None)


def personal_access(
    viewer: Viewer, layer: Layer, purpose: str | None
) -> tuple[frozenset[str], frozenset[str] | None]:
    """Which personal fields to show raw, and in which grids (None: all), for a stated purpose.

    No purpose, no raw personal data; a purpose from a role that may not see it is refused. A grid
    worker sees raw values only in their own grids. The caller audits the read."""
    if purpose is None or not layer.personal:
        return frozenset(), None
    if not purpose.strip():
        raise QueryError("purpose must say why you need the personal data")
    if not may_see_personal(viewer, layer.id):
        raise Forbidden(f"your role '{viewer.role}' may not see personal data of {layer.id}")
    grids = frozenset(viewer.grids) if viewer.role == "grid_worker" else None
    return frozenset(layer.personal), grids


def _masked(layer: Layer, viewer: Viewer, unmask: frozenset[str]) -> set[str]:
    """Personal fields to mask for this caller."""
    if may_see_personal(viewer, layer.id):
        return set(layer.personal) - set(unmask)
    return set(layer.personal)


def _output_geometry(geom, crs: str):
    srid, swap, digits = OUTPUT_CRS[crs]
    if srid == 3857:
        geom = func.ST_Transform(geom, 3857)
    elif swap:
        geom = func.ST_FlipCoordinates(geom)
    return func.ST_AsGeoJSON(geom, digits, 0)  # options 0: no 'crs' member (RFC 7946)


def parse_crs_uri(value: str, what: str = "crs") -> str:
    """Accept the CRS URIs we serve (and their EPSG:n / CRS84 short forms)."""
    short = {
        "CRS84": CRS84,
        "EPSG:4326": EPSG_URI.format(4326),
        "EPSG:4490": EPSG_URI.format(4490),
        "EPSG:3857": EPSG_URI.format(3857),
    }
    uri = short.get(value.strip().upper(), value.strip())
    uri = uri.replace("https://", "http://")
    if uri not in OUTPUT_CRS:
        raise QueryError(f"{what} '{value}' is not offered; use one of: {', '.join(OUTPUT_CRS)}")
    return uri


def _envelope(bbox: tuple[float, float, float, float], crs: str):
    srid, swap, _ = OUTPUT_CRS[crs]
    minx, miny, maxx, maxy = bbox
    if swap:  # EPSG:4326/4490 axis order is latitude, longitude
        minx, miny, maxx, maxy = miny, minx, maxy, maxx
    if srid == 3857:
        if not (
            -20037508.35 <= minx <= maxx <= 20037508.35
            and -20048966.1 <= miny <= maxy <= 20048966.1
        ):
            raise QueryError(
                "bbox is outside the EPSG:3857 world or its minimum exceeds its maximum"
            )
        return func.ST_Transform(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 3857), STORAGE_SRID)
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise QueryError(
            "bbox is out of range: longitudes must lie in [-180, 180] and latitudes in [-90, 90]"
            + (" (this bbox-crs orders latitude first)" if swap else "")
        )
    if minx > maxx or miny > maxy:
        raise QueryError("bbox minimum exceeds its maximum: give minx,miny,maxx,maxy")
    return func.ST_MakeEnvelope(minx, miny, maxx, maxy, STORAGE_SRID)


def _where(layer: Layer, t, q: ItemQuery, viewer: Viewer, masked: set[str]) -> ColumnElement:
    geom_name = layer.geometry_field
    clauses: list[ColumnElement] = []
    if q.bbox is not None:
        if geom_name is None:
            raise QueryError(f"collection '{layer.id}' has no geometry: bbox does not apply")
        clauses.append(func.ST_Intersects(t.c[geom_name], _envelope(q.bbox, q.bbox_crs)))
    queryable = {f["name"]: t.c[f["name"]] for f in layer.fields if f["name"] not in NEVER_SERVED}
    if not may_see_internal(viewer, layer.id):
        for name in layer.internal:
            queryable.pop(name, None)
    if q.filter:
        try:
            node = cql.parse(q.filter, q.filter_lang)
            clauses.append(cql.to_sql(node, queryable, forbidden=masked))
        except cql.FilterError as exc:
            raise QueryError(str(exc)) from exc
    rule = row_rule(viewer, layer.id)
    if rule:
        columns = {f["name"]: t.c[f["name"]] for f in layer.fields}
        clauses.append(cql.to_sql(cql.parse(rule), columns))
    if q.datetime is not None:
        if not layer.time_field:
            raise QueryError(f"collection '{layer.id}' has no time: datetime does not apply")
        start, end = q.datetime
        when = t.c[layer.time_field]
        if start is not None and end is not None and start == end:
            clauses.append(when == start)
        else:
            if start is not None:
                clauses.append(when >= start)
            if end is not None:
                clauses.append(when <= end)
    return and_(true(), *clauses)


def _properties(layer: Layer, t, q: ItemQuery, viewer: Viewer, masked: set[str]):
    allowed = layer.property_fields(viewer)
    names = [f["name"] for f in allowed]
    if q.properties is not None:
        unknown = [p for p in q.properties if p not in names]
        if unknown:
            raise QueryError(
                f"unknown properties {unknown}; this collection has: {', '.join(names)}"
            )
        names = [n for n in names if n in q.properties]
    out = []
    for name in names:
        expr = t.c[name]
        if name in layer.personal:
            hidden = getattr(func, MASK_FUNCTIONS[layer.personal[name]])(expr)
            if name in masked:
                expr = hidden
            elif (
                q.unmask_grids is not None
            ):  # a grid worker sees raw values in their own grids only
                expr = case((t.c["grid_code"].in_(sorted(q.unmask_grids)), expr), else_=hidden)
        out.append((name, expr))
    return out


def _order(layer: Layer, t, q: ItemQuery, viewer: Viewer, masked: set[str]):
    sortable = {f["name"] for f in layer.property_fields(viewer)} | {layer.id_field}
    order = []
    for name, ascending in q.sortby:
        if name in masked:
            raise QueryError(
                f"'{name}' is personal data: sorting on it needs a role that may see it"
            )
        if name not in sortable:
            raise QueryError(
                f"cannot sort by '{name}'; sortable properties: {', '.join(sorted(sortable))}"
            )
        order.append(t.c[name].asc() if ascending else t.c[name].desc())
    order.append(t.c[layer.id_field].asc())
    return order


def _feature_sql(layer: Layer, t, q: ItemQuery, viewer: Viewer, masked: set[str]):
    props = _properties(layer, t, q, viewer, masked)
    pairs = []
    for name, expr in props:
        pairs.extend([literal(name), expr])
    geom_name = layer.geometry_field
    # the feature's text is put together from texts: ST_AsGeoJSON's output is not parsed again
    geometry = (
        func.coalesce(_output_geometry(t.c[geom_name], q.crs), "null")
        if geom_name
        else literal("null")
    )
    properties = cast(func.json_build_object(*pairs), Text) if pairs else literal("{}")
    return func.concat(
        '{"type":"Feature","id":',
        t.c[layer.id_field],
        ',"geometry":',
        geometry,
        ',"properties":',
        properties,
        "}",
    )


def query_items(conn: Connection, layer: Layer, q: ItemQuery, viewer: Viewer) -> ItemPage:
    """One page of features as GeoJSON texts, with the total matched and whether more follow."""
    if not 1 <= q.limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
    if q.offset < 0:
        raise QueryError("offset must be zero or more")
    t = _sql_table(layer)
    masked = _masked(layer, viewer, q.unmask)
    where = _where(layer, t, q, viewer, masked)
    stmt = (
        select(_feature_sql(layer, t, q, viewer, masked))
        .where(where)
        .order_by(*_order(layer, t, q, viewer, masked))
        .limit(q.limit + 1)
        .offset(q.offset)
    )
    rows = [r[0].encode() for r in conn.execute(stmt)]
    has_next = len(rows) > q.limit
    rows = rows[: q.limit]
    if q.offset == 0 and not has_next:
        matched = len(rows)
    else:
        matched = conn.execute(select(func.count()).select_from(t).where(where)).scalar_one()
    return ItemPage(rows, int(matched), len(rows), has_next)


def get_item(conn: Connection, layer: Layer, fid: str, q: ItemQuery, viewer: Viewer) -> bytes:
    if not re.fullmatch(r"-?\d{1,18}", fid):
        raise NotFound(f"no feature '{fid}' in '{layer.id}': feature ids are integers")
    t = _sql_table(layer)
    masked = _masked(layer, viewer, q.unmask)
    where = and_(t.c[layer.id_field] == int(fid), _where(layer, t, q, viewer, masked))
    row = conn.execute(select(_feature_sql(layer, t, q, viewer, masked)).where(where)).first()
    if row is None:
        raise NotFound(f"no feature {fid} in '{layer.id}'")
    return row[0].encode()


def time_extent(conn: Connection, layer: Layer) -> list[str | None] | None:
    if not layer.time_field:
        return None
    t = _sql_table(layer)
    low, high = conn.execute(
        select(func.min(t.c[layer.time_field]), func.max(t.c[layer.time_field]))
    ).one()
    return [low.isoformat() if low else None, high.isoformat() if high else None]


def queryables(layer: Layer, viewer: Viewer) -> dict:
    """JSON Schema of the properties a caller may filter on (Part 3 queryables)."""
    props = {}
    masked = set(layer.personal) if not may_see_personal(viewer, layer.id) else set()
    for f in layer.fields:
        if f["name"] in NEVER_SERVED or f["name"] in masked:
            continue
        if f["name"] in layer.internal and not may_see_internal(viewer, layer.id):
            continue
        if f.get("geometry_type"):
            props[f["name"]] = {
                "format": f"geometry-{f['geometry_type'].lower().replace('multi', 'multi')}",
                "x-ogc-role": "primary-geometry",
            }
            continue
        entry = {"type": f["type"] if f["type"] != "array" else "array", "title": f["name"]}
        if f.get("db_type") in ("timestamp with time zone", "date"):
            entry["format"] = "date-time" if f["db_type"].startswith("timestamp") else "date"
        props[f["name"]] = entry
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "type": "object",
        "title": layer.title_zh,
        "properties": props,
        "additionalProperties": False,
    }
