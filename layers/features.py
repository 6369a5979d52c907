"""The generic read path of every catalogued layer: OGC API – Features Core, CRS (Part 2) and
filtering (Part 3). What a caller sees (columns, masks, rows) is the layer's read plan
(geo.policy.plan); this module only turns the plan into SQL.

PostgreSQL builds each feature's GeoJSON text (``json_build_object`` + ``ST_AsGeoJSON``), so
Python only joins bytes; SQL is composed with SQLAlchemy expressions and bound parameters, never
formatted from user input. Nothing here knows HTTP: routes translate requests to :class:`ItemQuery`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime

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
    null,
    select,
    table,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from geo.database import refusing
from geo.errors import BadRequest, NotFound
from geo.policy.plan import GRID_FIELD, ReadPlan
from geo.settings import DISTRICT_COLUMN, STORAGE_SRID
from geo.sql import ident
from geo.text import text_problem
from layers import cql
from layers.catalogue import Layer

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
#: far past any layer's end, and far below PostgreSQL's bigint (an offset is an integer at the edge)
MAX_OFFSET = 10**12
DEFAULT_LIMIT = 10
NOT_JSON_NUMBERS = [float("nan"), float("inf"), float("-inf")]
SQL_TYPES = {"integer": BigInteger, "number": Float, "boolean": Boolean, "string": String}
MASK_FUNCTIONS = {
    "phone": "onemap_mask_phone",
    "id_number": "onemap_mask_id_number",
    "name": "onemap_mask_name",
    "birth_date": "onemap_mask_birth_date",
}


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
    equals: dict[str, list[str]] = field(default_factory=dict)  # queryable → values (Part 3)
    after: int | None = None  # keyset paging: features with a larger id (id order only)
    #: a business search's own conditions and order (layers.asset_search): SQL over the layer's
    #: columns with bound values, added to the plan's, never in place of them
    clauses: list = field(default_factory=list)
    order_first: list = field(default_factory=list)


@dataclass
class ItemPage:
    features: list[bytes]
    number_matched: int
    number_returned: int
    has_next: bool
    last_id: int | None = None  # where the next page starts (keyset paging)


def _sql_table(layer: Layer):
    schema, _, name = layer.table.rpartition(".")
    cols = [column(DISTRICT_COLUMN, String)] if layer.district_column else []
    for c in layer.columns:
        ident(c["name"])  # names reach SQL checked (SQLAlchemy quotes them)
        if c.get("geometry_type"):
            cols.append(column(c["name"], Geometry(srid=STORAGE_SRID)))
        elif c.get("db_type") == "timestamp with time zone":
            cols.append(column(c["name"], DateTime(timezone=True)))
        elif c.get("db_type") == "date":
            cols.append(column(c["name"], Date))
        elif c.get("db_type") in ("integer", "smallint"):
            cols.append(column(c["name"], Integer))
        else:
            cols.append(column(c["name"], SQL_TYPES.get(c["type"], String)))
    return table(name, *cols, schema=schema or None)


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
        raise BadRequest(f"{what} '{value}' is not offered; use one of: {', '.join(OUTPUT_CRS)}")
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
            raise BadRequest(
                "bbox is outside the EPSG:3857 world or its minimum exceeds its maximum"
            )
        return func.ST_Transform(func.ST_MakeEnvelope(minx, miny, maxx, maxy, 3857), STORAGE_SRID)
    if not (
        -180 <= minx <= 180 and -180 <= maxx <= 180 and -90 <= miny <= 90 and -90 <= maxy <= 90
    ):
        raise BadRequest(
            "bbox is out of range: longitudes must lie in [-180, 180] and latitudes in [-90, 90]"
            + (" (this bbox-crs orders latitude first)" if swap else "")
        )
    if minx > maxx or miny > maxy:
        raise BadRequest("bbox minimum exceeds its maximum: give minx,miny,maxx,maxy")
    return func.ST_MakeEnvelope(minx, miny, maxx, maxy, STORAGE_SRID)


#: the districts' boundaries, for a layer whose rows carry no division code
_AREAS = table("admin_areas", column("code", String), column("geom", Geometry(srid=STORAGE_SRID)))


def _in_district(layer: Layer, t, district: str) -> ColumnElement | None:
    """Rows of ``layer`` in ``district``: by the district code the table keeps (migration 0020,
    indexed on the large tables), else the first six digits of the grid code (a departmental
    layer), else the geometry meeting the district's boundary; None: the layer cannot say."""
    if layer.district_column:
        return t.c[DISTRICT_COLUMN] == district
    if any(c["name"] == GRID_FIELD for c in layer.columns):
        return func.left(t.c[GRID_FIELD], 6) == district
    geom = layer.geometry_field
    if geom is None:
        return None
    boundary = select(_AREAS.c.geom).where(_AREAS.c.code == district + "000000").scalar_subquery()
    return func.ST_Intersects(t.c[geom], boundary)


def _visible_rows(layer: Layer, t, plan: ReadPlan) -> list[ColumnElement]:
    """The plan's row rule as SQL: the caller's district, the caller's grids, or the layer's
    CQL2 row filter."""
    clauses: list[ColumnElement] = []
    if plan.district is not None:
        inside = _in_district(layer, t, plan.district)
        if inside is not None:
            clauses.append(inside)
    if plan.row_grids is not None:
        clauses.append(t.c[GRID_FIELD].in_(sorted(plan.row_grids)))
    if plan.row_filter is not None:
        columns = {c["name"]: t.c[c["name"]] for c in layer.columns}
        clauses.append(cql.to_sql(cql.parse(plan.row_filter), columns))
    return clauses


def kinds(layer: Layer) -> dict[str, str]:
    """Each column's kind of value, for checking a filter's values before any SQL."""
    out = {}
    for c in layer.columns:
        db_type = c.get("db_type") or ""
        if c.get("geometry_type"):
            out[c["name"]] = "geometry"
        elif db_type == "date":
            out[c["name"]] = "date"
        elif db_type.startswith("timestamp"):
            out[c["name"]] = "datetime"
        else:
            out[c["name"]] = c.get("type") or "string"
    return out


def _where(layer: Layer, t, q: ItemQuery, plan: ReadPlan) -> ColumnElement:
    geom_name = layer.geometry_field
    clauses: list[ColumnElement] = _visible_rows(layer, t, plan)
    if q.bbox is not None:
        if geom_name is None:
            raise BadRequest(f"collection '{layer.id}' has no geometry: bbox does not apply")
        clauses.append(func.ST_Intersects(t.c[geom_name], _envelope(q.bbox, q.bbox_crs)))
    used = {name for name, _ in q.sortby}
    if q.filter:
        queryable = {name: t.c[name] for name in plan.columns}
        node = cql.parse(q.filter, q.filter_lang)
        used |= cql.check(node, kinds(layer))
        clauses.append(cql.to_sql(node, queryable, forbidden=plan.masked))
    if q.equals:
        used |= set(q.equals)
        clauses.extend(_queryable_parameters(layer, t, q.equals, plan))
    if plan.raw_grids is not None and used & plan.raw:
        # a personal field is filtered or sorted on only where the caller may read it raw: a
        # match (or an order) elsewhere would tell them what they may not see
        clauses.append(t.c[GRID_FIELD].in_(sorted(plan.raw_grids)))
    clauses.extend(q.clauses)
    if q.datetime is not None:
        if not layer.time_field:
            raise BadRequest(f"collection '{layer.id}' has no time: datetime does not apply")
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


def _typed(name: str, kind: str, value: str):
    """A query parameter's text as its queryable's type (OGC API – Features Part 3)."""
    try:
        if kind == "integer":
            number = int(value)
            if abs(number) >= 2**63:
                raise ValueError(value)
            return number
        if kind == "number":
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError(value)
            return number
        if kind == "boolean":
            if value.lower() not in ("true", "false"):
                raise ValueError(value)
            return value.lower() == "true"
        if kind == "date":
            return date.fromisoformat(value)
        if kind == "datetime":
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(
            f"{name}={value!r} is not a {kind} value, as the queryable {name} is"
        ) from exc
    problem = text_problem(value)
    if problem:
        raise BadRequest(f"{name} {problem}")
    return value


def _queryable_parameters(layer: Layer, t, equals: dict[str, list[str]], plan: ReadPlan):
    """``?use=residential&floors=1``: each parameter named after a queryable is an equality
    (several values: any of them); a parameter that is neither ours nor a queryable is a 400."""
    kinds_ = kinds(layer)
    allowed = [
        n
        for n in plan.columns
        if n not in plan.masked and kinds_.get(n) not in ("geometry", "array", "object")
    ]
    clauses = []
    for name, texts in equals.items():
        if name not in allowed:
            raise BadRequest(
                f"'{name}' is neither a parameter of this service nor a queryable of "
                f"{layer.id}; its queryables are {', '.join(allowed)}"
            )
        typed = [_typed(name, kinds_[name], v) for v in texts]
        column = t.c[name]
        clauses.append(column == typed[0] if len(typed) == 1 else column.in_(typed))
    return clauses


def _served_id(layer: Layer, plan: ReadPlan) -> list[str]:
    """The id column, served as a property too (as tipg does): QGIS 3.22 numbers features 1…n
    itself and shows the top-level ``id`` nowhere. Only where the plan serves the column, and it
    is the top-level id's own value, so it tells no one anything new."""
    name = layer.id_field
    return [name] if name in plan.columns and name not in plan.personal else []


def _properties(layer: Layer, t, q: ItemQuery, plan: ReadPlan):
    names = _served_id(layer, plan) + [c["name"] for c in layer.property_columns(plan)]
    if q.properties is not None:
        unknown = [p for p in q.properties if p not in names]
        if unknown:
            raise BadRequest(
                f"unknown properties {unknown}; this collection has: {', '.join(names)}"
            )
        names = [n for n in names if n in q.properties]
    out = []
    for name in names:
        expr = t.c[name]
        kind = plan.personal.get(name)
        if isinstance(t.c[name].type, Float) and kind is None:
            # JSON has no NaN or infinity: json_build_object would write them as strings, and a
            # client guessing the column's type from them would take it for text
            expr = case((expr.in_(NOT_JSON_NUMBERS), null()), else_=expr)
        if kind is not None:
            hidden = getattr(func, MASK_FUNCTIONS[kind])(expr)
            if name not in plan.raw:
                expr = hidden
            elif plan.raw_grids is not None:  # raw only in the caller's own grids
                raw = cast(expr, Text)  # masks are texts (a masked date is its year)
                expr = case((t.c[GRID_FIELD].in_(sorted(plan.raw_grids)), raw), else_=hidden)
        out.append((name, expr))
    return out


def _order(layer: Layer, t, q: ItemQuery, plan: ReadPlan):
    sortable = {c["name"] for c in layer.property_columns(plan)} | {layer.id_field}
    order = list(q.order_first)
    for name, ascending in q.sortby:
        if name in plan.masked:
            raise BadRequest(
                f"'{name}' is personal data: sorting on it needs a role that may see it"
            )
        if name not in sortable:
            raise BadRequest(
                f"cannot sort by '{name}'; sortable properties: {', '.join(sorted(sortable))}"
            )
        order.append(t.c[name].asc() if ascending else t.c[name].desc())
    order.append(t.c[layer.id_field].asc())
    return order


def _feature_sql(layer: Layer, t, q: ItemQuery, plan: ReadPlan):
    pairs = []
    for name, expr in _properties(layer, t, q, plan):
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


def query_items(conn: Connection, layer: Layer, q: ItemQuery, plan: ReadPlan) -> ItemPage:
    """One page of features as GeoJSON texts, with the total matched and whether more follow."""
    if not 1 <= q.limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= q.offset <= MAX_OFFSET:
        raise BadRequest(f"offset must be between 0 and {MAX_OFFSET:,}")
    t = _sql_table(layer)
    where = _where(layer, t, q, plan)
    page_where = where
    if q.after is not None:  # keyset: a deep page costs what the first one does
        if q.sortby:
            raise BadRequest("after= continues the id order: it cannot be combined with sortby")
        page_where = and_(where, t.c[layer.id_field] > q.after)
    order = _order(layer, t, q, plan)
    features = select(_feature_sql(layer, t, q, plan), t.c[layer.id_field])
    if q.offset and q.after is None:
        # the rows an offset skips are found by id alone: building their GeoJSON only to throw
        # it away made a deep page cost what all the pages before it did
        ids = (
            select(t.c[layer.id_field].label("page_id"))
            .where(page_where)
            .order_by(*order)
            .limit(q.limit + 1)
            .offset(q.offset)
            .subquery()
        )
        stmt = features.select_from(t.join(ids, t.c[layer.id_field] == ids.c.page_id)).order_by(
            *order
        )
    else:
        stmt = features.where(page_where).order_by(*order).limit(q.limit + 1)
    with refusing():
        found = conn.execute(stmt).all()
        has_next = len(found) > q.limit
        found = found[: q.limit]
        rows = [r[0].encode() for r in found]
        if q.offset == 0 and q.after is None and not has_next:
            matched = len(rows)
        else:
            matched = conn.execute(select(func.count()).select_from(t).where(where)).scalar_one()
    last = found[-1][1] if found else None
    return ItemPage(rows, int(matched), len(rows), has_next, last)


def get_item(conn: Connection, layer: Layer, fid: str, q: ItemQuery, plan: ReadPlan) -> bytes:
    if not re.fullmatch(r"-?\d{1,18}", fid):
        raise NotFound(f"no feature '{fid}' in '{layer.id}': feature ids are integers")
    t = _sql_table(layer)
    where = and_(t.c[layer.id_field] == int(fid), _where(layer, t, q, plan))
    with refusing():
        row = conn.execute(select(_feature_sql(layer, t, q, plan)).where(where)).first()
    if row is None:
        raise NotFound(f"no feature {fid} in '{layer.id}'")
    return row[0].encode()


def as_seen_by(conn: Connection, layer: Layer, plan: ReadPlan) -> Layer:
    """The layer with the count and extent of the rows ``plan`` lets its caller read: a count
    never reveals rows the caller cannot read."""
    if not plan.restricted:
        return layer
    t = _sql_table(layer)
    where = and_(true(), *_visible_rows(layer, t, plan))
    geom = layer.geometry_field
    box = (
        [
            f(func.ST_Extent(t.c[geom]))
            for f in (func.ST_XMin, func.ST_YMin, func.ST_XMax, func.ST_YMax)
        ]
        if geom
        else []
    )
    row = conn.execute(select(func.count(), *box).select_from(t).where(where)).one()
    count = row[0]
    bounds = [float(v) for v in row[1:]] if geom and row[1] is not None else None
    return replace(layer, feature_count=int(count), extent=bounds)


def time_extent(conn: Connection, layer: Layer) -> list[str | None] | None:
    if not layer.time_field:
        return None
    t = _sql_table(layer)
    low, high = conn.execute(
        select(func.min(t.c[layer.time_field]), func.max(t.c[layer.time_field]))
    ).one()
    return [low.isoformat() if low else None, high.isoformat() if high else None]


def queryables(layer: Layer, plan: ReadPlan, titles: dict[str, str] | None = None) -> dict:
    """JSON Schema of the properties a caller may filter on (Part 3 queryables)."""
    titles = titles or {}
    props = {}
    for c in layer.columns:
        if c["name"] not in plan.columns or c["name"] in plan.masked:
            continue
        if c.get("geometry_type"):
            props[c["name"]] = {
                "title": titles.get(c["name"], c["name"]),
                "format": f"geometry-{c['geometry_type'].lower()}",
                "x-ogc-role": "primary-geometry",
            }
            continue
        entry = {"title": titles.get(c["name"], c["name"])} | _schema_type(c, nullable=False)
        role = _role(layer, c["name"])
        if role:
            entry["x-ogc-role"] = role
        props[c["name"]] = entry
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "type": "object",
        "title": layer.title_zh,
        "properties": props,
        "additionalProperties": False,
        # the same names in the array of the Part 3 drafts, which GDAL 3.6 still reads
        "queryables": [
            {"id": name, "type": p.get("type", "geometry")} for name, p in props.items()
        ],
    }


def _role(layer: Layer, name: str) -> str | None:
    """The property's Part 5 role: the id, or the time ``datetime`` applies to."""
    if name == layer.id_field:
        return "id"
    return "primary-instant" if name == layer.time_field else None


def _schema_type(column: dict, nullable: bool = True) -> dict:
    """The column's JSON Schema type, with ``format`` for times: a client (GDAL, QGIS ≥ 3.32)
    need not guess a type from a first page of nulls. ``nullable``: "null" where it may be."""
    kind = column.get("type") or "string"
    nullable = nullable and column.get("nullable", True)
    entry: dict = {"type": [kind, "null"] if nullable else kind}
    db_type = column.get("db_type") or ""
    if db_type == "date":
        entry["format"] = "date"
    elif db_type.startswith("timestamp"):
        entry["format"] = "date-time"
    return entry


def schema(layer: Layer, plan: ReadPlan, titles: dict[str, str]) -> dict:
    """The features' schema (OGC API – Features Part 5): every property the caller is served,
    with its type, so that clients need not guess types from a first page of nulls."""
    props = {}
    for c in layer.columns:
        name = c["name"]
        if name not in plan.columns:
            continue
        if c.get("geometry_type"):
            props[name] = {
                "title": titles.get(name, name),
                "format": f"geometry-{c['geometry_type'].lower()}",
                "x-ogc-role": "primary-geometry",
            }
            continue
        entry = {"title": titles.get(name, name)} | _schema_type(c)
        role = _role(layer, name)
        if role:
            entry["x-ogc-role"] = role
        if name in plan.personal and (name not in plan.raw or plan.raw_grids is not None):
            # masks are texts (a masked date is its year), and so is a value raw in some grids
            entry["type"] = ["string", "null"]
            entry.pop("format", None)
        if name in plan.personal and name not in plan.raw:
            entry["description"] = "个人信息，已脱敏 personal data, masked"
        props[name] = entry
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": layer.title_zh,
        "properties": props,
    }


def sortables(layer: Layer, plan: ReadPlan, titles: dict[str, str]) -> dict:
    """What ``sortby`` may name (Part 5): served, unmasked, scalar properties."""
    props = {
        c["name"]: {"title": titles.get(c["name"], c["name"])} | _schema_type(c)
        for c in layer.columns
        if c["name"] in plan.columns
        and c["name"] not in plan.masked
        and not c.get("geometry_type")
        and c.get("type") not in ("array", "object")
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "title": layer.title_zh,
        "properties": props,
        "additionalProperties": False,
    }


#: column types a vector tile carries as they are; everything else goes as text (numeric as float)
_TILE_NATIVE = {"integer", "smallint", "bigint", "double precision", "real", "boolean", "text"}


def tile_source(layer: Layer, plan: ReadPlan):
    """What a vector tile may draw of ``layer`` for this caller, under the same plan as the
    features: the table, the row rules, and the served properties. Personal fields are left out
    of tiles altogether (masked or not): a map has no use for them, and whoever needs one opens
    the feature, whose reading is audited."""
    t = _sql_table(layer)
    properties = []
    for c in layer.property_columns(plan):
        name = c["name"]
        if name in plan.personal:
            continue
        db_type = c.get("db_type") or ""
        expr = t.c[name]
        if db_type == "numeric":
            expr = cast(expr, Float)
        elif db_type not in _TILE_NATIVE:
            expr = cast(expr, Text)
        properties.append((name, expr))
    return t, _visible_rows(layer, t, plan), properties
