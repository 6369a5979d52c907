"""The layer catalogue (资源目录, "one table" 一张表): every layer of the one map, whoever owns it.

Each layer has one entry: titles, owning department, geometry type, CRS of origin, update
frequency, when it was last loaded, feature count, extent, its fields with types, which fields are
personal data (and how each is masked), which are internal, and its sharing level between
departments and opening level to the public (国发〔2016〕51号). Entries live in PostGIS
(``layer_catalogue``) so that every process reads the same catalogue.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import NotFound
from geo.models import Base, access_of
from geo.policy.access import LayerAccess, may_list
from geo.policy.plan import ReadPlan, plan_read
from geo.policy.roles import Viewer
from geo.settings import DISTRICT_COLUMN, TILE_GEOMETRY
from geo.sql import ident as sql_ident
from geo.sql import table as sql_table

SHARING_ZH = {"unconditional": "无条件共享", "conditional": "有条件共享", "none": "不予共享"}
OPENING_ZH = {"open": "无条件开放", "restricted": "受限开放", "closed": "禁止开放"}

#: PostgreSQL type → JSON Schema type, for the catalogue's field list and the queryables.
JSON_TYPES = {
    "integer": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "numeric": "number",
    "double precision": "number",
    "real": "number",
    "boolean": "boolean",
    "text": "string",
    "character varying": "string",
    "character": "string",
    "date": "string",
    "timestamp with time zone": "string",
    "timestamp without time zone": "string",
    "ARRAY": "array",
    "jsonb": "object",
    "json": "object",
    "USER-DEFINED": "geometry",
}


@dataclass(frozen=True)
class Ingest:
    """How a departmental layer's files are read and matched (layers.ingest).

    ``key`` names the field that identifies a feature in the department's own system (duplicates
    are rejected); ``match`` lists the standard data each feature is joined to: ``grid`` (the grid
    containing the feature's point on surface), ``building`` (the nearest standard building within
    ``building_within_m``), ``address`` (the address text matched to the standard address library,
    else the nearest standard address within ``address_within_m``). ``address_field`` names the
    field holding the address text. Features farther than ``district_tolerance_m`` outside the
    district are rejected. ``department_aliases`` are other names ``--dept`` may give.
    """

    key: str | None = None
    match: tuple[str, ...] = ()
    address_field: str | None = None
    building_within_m: float = 50.0
    address_within_m: float = 100.0
    district_tolerance_m: float = 50.0
    department_aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Layer:
    """One layer of the one map, the only layer type: how it is described, shared and protected
    (``access``, the rules the read plan applies); for a departmental layer, its standard fields
    (``fields``, with their source columns) and how its files are ingested (``ingest``); and, as
    read back from the catalogue, its state: columns, count, extent, when it was last loaded."""

    id: str
    table: str
    title_zh: str
    title_en: str
    department: str
    description: str | None = None
    sharing_level: str = "unconditional"
    opening_level: str = "open"
    update_frequency: str = "daily"
    source_crs: str | None = "EPSG:4490"
    time_field: str | None = None
    access: LayerAccess = field(default_factory=LayerAccess)
    fields: tuple = ()  # declared standard fields (layers.declaration.Field), departmental layers
    ingest: Ingest | None = None
    # the catalogue's record of the table as loaded
    columns: tuple[dict, ...] = ()
    feature_count: int | None = None
    extent: list[float] | None = None
    geometry_type: str | None = None
    last_loaded: datetime | None = None
    version: str | None = None  # the catalogue row's version (xmin) when read back
    tile_geometry: bool = False  # its table keeps a Web Mercator copy (TILE_GEOMETRY) for tiles
    district_column: bool = False  # its table keeps its rows' district (DISTRICT_COLUMN)

    id_field: ClassVar[str] = "id"

    @property
    def personal(self) -> Mapping[str, str]:
        return self.access.personal

    @property
    def internal(self) -> frozenset[str]:
        return self.access.internal

    @property
    def departmental(self) -> bool:
        return self.ingest is not None or self.table.startswith("layers.")

    @property
    def geometry_field(self) -> str | None:
        return next((c["name"] for c in self.columns if c.get("geometry_type")), None)

    def plan(self, viewer: Viewer, purpose: str | None = None) -> ReadPlan:
        """What ``viewer`` may see of this layer (geo.policy.plan): asked by every read path."""
        return plan_read(self.id, self.access, [c["name"] for c in self.columns], viewer, purpose)

    def property_columns(self, plan: ReadPlan) -> list[dict]:
        """The columns served as properties under ``plan`` (not the id, not the geometry)."""
        shown = set(plan.columns) - {self.id_field}
        return [c for c in self.columns if c["name"] in shown and not c.get("geometry_type")]

    def field(self, name: str):
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def owned_by(self, department: str) -> bool:
        """Whether ``--dept`` names this layer's department (its name, part of it, or an alias)."""
        wanted = re.sub(r"\s+", "", department or "").casefold()
        if len(wanted) < 2:
            return False
        aliases = self.ingest.department_aliases if self.ingest else ()
        known = [re.sub(r"\s+", "", k).casefold() for k in (self.department, *aliases)]
        return any(wanted == k or wanted in k for k in known)


RECORDS_DEPT = "区社会治理现代化指挥中心 (grid management centre)"
NATURAL_RESOURCES = "区自然资源和规划局 (natural resources bureau)"
EMERGENCY = "区应急管理局 (emergency management bureau)"
INVESTMENT = "区投资促进中心 (investment promotion centre)"

BASE_LAYERS: tuple[Layer, ...] = (
    Layer(
        "admin_areas",
        "admin_areas",
        "行政区划",
        "Administrative areas",
        NATURAL_RESOURCES,
        "区、街道（镇）、社区（村）三级行政区划及12位统计用区划代码。District, streets/towns and communities/villages with 12-digit statistical codes.",
        update_frequency="yearly",
    ),
    Layer(
        "grids",
        "grids",
        "标准基础网格",
        "Standard grids",
        RECORDS_DEPT,
        "网格员的责任网格，编码在社区代码后延伸。The grid workers' patches; codes extend the community code.",
        update_frequency="monthly",
    ),
    Layer(
        "buildings",
        "buildings",
        "标准建筑物",
        "Standard buildings",
        NATURAL_RESOURCES,
        "以标准建筑物编码标识的建筑物轮廓。Building footprints keyed by the standard building code.",
    ),
    Layer(
        "addresses",
        "addresses",
        "标准地址",
        "Standard addresses",
        RECORDS_DEPT,
        "标准地址库：道路、门牌、楼栋、单元四级。Standard address library: road, door plate, building and unit levels.",
        opening_level="restricted",
    ),
    Layer(
        "houses",
        "houses",
        "实有房屋",
        "Actual houses",
        RECORDS_DEPT,
        "标准建筑物内的住房与经营场所。Dwellings and premises in standard buildings.",
        sharing_level="conditional",
        opening_level="restricted",
    ),
    Layer(
        "residents",
        "residents",
        "实有人口",
        "Actual residents",
        RECORDS_DEPT,
        "居住在区内房屋中的实有人口；个人信息按角色脱敏。People living in the district's houses; personal data masked by role.",
        sharing_level="conditional",
        opening_level="closed",
        access=access_of("residents"),
    ),
    Layer(
        "organisations",
        "organisations",
        "实有单位",
        "Actual organisations",
        RECORDS_DEPT,
        "企业、机关、学校、商户等单位及其统一社会信用代码。Enterprises, offices, schools and shops with their unified social credit codes.",
        opening_level="restricted",
        access=access_of("organisations"),
    ),
    Layer(
        "facilities",
        "facilities",
        "实有设施",
        "Actual facilities",
        RECORDS_DEPT,
        "学校、卫生站、养老、消防站、消火栓、避难场所、监控等设施。Schools, clinics, elderly care, fire stations, hydrants, shelters, cameras and more.",
    ),
    Layer(
        "landuse_parcels",
        "landuse_parcels",
        "地类图斑",
        "Land-use parcels",
        NATURAL_RESOURCES,
        "按 GB/T 21010-2017 分类的地类图斑。Land-use parcels classed by GB/T 21010-2017.",
        update_frequency="yearly",
    ),
    Layer(
        "roads",
        "roads",
        "道路",
        "Roads",
        NATURAL_RESOURCES,
        "按等级划分的道路中心线。Road centre lines by class.",
        update_frequency="yearly",
    ),
    Layer(
        "water",
        "water",
        "水系",
        "Water",
        NATURAL_RESOURCES,
        "河流、湖泊、水库与坑塘。Rivers, lakes, reservoirs and ponds.",
        update_frequency="yearly",
    ),
    Layer(
        "parks",
        "parks",
        "公园绿地",
        "Parks",
        NATURAL_RESOURCES,
        "公园与绿地。Parks and green spaces.",
        update_frequency="yearly",
    ),
    Layer(
        "hazards",
        "hazards",
        "安全隐患",
        "Hazards",
        EMERGENCY,
        "按类别与等级登记的安全隐患及整改期限。Hazards by category and level with their rectification deadlines.",
        sharing_level="conditional",
        opening_level="restricted",
        time_field="found_at",
    ),
    Layer(
        "inspections",
        "inspections",
        "检查记录",
        "Inspections",
        EMERGENCY,
        "领导夜查、部门检查与网格巡查记录。Leader night checks, department checks and grid patrols.",
        sharing_level="conditional",
        opening_level="restricted",
        access=access_of("inspections"),
        time_field="inspected_at",
    ),
    Layer(
        "sensors",
        "sensors",
        "物联感知设备",
        "Sensors",
        EMERGENCY,
        "水位、烟感、燃气等物联感知设备及报警阈值。IoT sensors (water level, smoke, gas …) with alarm thresholds.",
        opening_level="restricted",
        time_field="installed_at",
    ),
    Layer(
        "assets",
        "assets",
        "存量资产",
        "Idle assets",
        INVESTMENT,
        "四类存量闲置资产，供招商推介。Idle assets for investment promotion in four categories.",
        opening_level="restricted",
        access=access_of("assets"),
    ),
)


def register(conn: Connection, layer: Layer) -> None:
    """Insert or update a layer's declared entry (columns, count, extent come from :func:`refresh`)."""
    conn.execute(
        text("""
        INSERT INTO layer_catalogue (id, table_name, title_zh, title_en, department, description,
            source_crs, update_frequency, access, time_field, sharing_level, opening_level)
        VALUES (:id, :table, :title_zh, :title_en, :department, :description, :source_crs,
            :update_frequency, CAST(:access AS jsonb), :time_field, :sharing, :opening)
        ON CONFLICT (id) DO UPDATE SET table_name = EXCLUDED.table_name,
            title_zh = EXCLUDED.title_zh, title_en = EXCLUDED.title_en,
            department = EXCLUDED.department, description = EXCLUDED.description,
            source_crs = EXCLUDED.source_crs, update_frequency = EXCLUDED.update_frequency,
            access = EXCLUDED.access, time_field = EXCLUDED.time_field,
            sharing_level = EXCLUDED.sharing_level, opening_level = EXCLUDED.opening_level
        """),
        dict(
            id=layer.id,
            table=layer.table,
            title_zh=layer.title_zh,
            title_en=layer.title_en,
            department=layer.department,
            description=layer.description,
            source_crs=layer.source_crs,
            update_frequency=layer.update_frequency,
            access=_json(layer.access.as_json()),
            time_field=layer.time_field,
            sharing=layer.sharing_level,
            opening=layer.opening_level,
        ),
    )


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def table_columns(conn: Connection, table: str) -> list[dict]:
    """The table's columns with JSON types, in table order (personal ones marked by refresh).
    Generated columns are derived storage (the tile geometry), not content: not listed."""
    schema, _, name = table.rpartition(".")
    rows = conn.execute(
        text("""
        SELECT c.column_name, c.data_type, c.is_nullable = 'YES' AS nullable,
               coalesce(g.type, '') AS geometry_type
        FROM information_schema.columns c
        LEFT JOIN geometry_columns g ON g.f_table_schema = c.table_schema
             AND g.f_table_name = c.table_name AND g.f_geometry_column = c.column_name
        WHERE c.table_schema = :schema AND c.table_name = :name AND c.is_generated = 'NEVER'
        ORDER BY c.ordinal_position
        """),
        dict(schema=schema or "public", name=name),
    ).mappings()
    columns = [
        dict(
            name=r["column_name"],
            type=JSON_TYPES.get(r["data_type"], "string"),
            db_type=r["data_type"],
            nullable=r["nullable"],
            geometry_type=r["geometry_type"] or None,
        )
        for r in rows
    ]
    return _in_model_order(schema or "public", name, columns)


def _in_model_order(schema: str, name: str, columns: list[dict]) -> list[dict]:
    """A base table's columns in its model's order: a column a migration added later is listed
    where the model declares it (beside its neighbours), not at the physical end of the table,
    so that features, records and exports show fields in one order on every database."""
    model = Base.metadata.tables.get(name) if schema == "public" else None
    if model is None:
        return columns
    order = {c.name: i for i, c in enumerate(model.columns)}
    return sorted(columns, key=lambda c: (order.get(c["name"], len(order)),))


def refresh(conn: Connection, layer_id: str | None = None) -> None:
    """Recount features, recompute extent and column list, stamp last loaded."""
    ids = (
        [layer_id]
        if layer_id
        else [r[0] for r in conn.execute(text("SELECT id FROM layer_catalogue"))]
    )
    for lid in ids:
        table_name, access = conn.execute(
            text("SELECT table_name, access FROM layer_catalogue WHERE id = :id"), dict(id=lid)
        ).one()
        personal = (access or {}).get("personal", {})
        columns = table_columns(conn, table_name)
        for c in columns:
            if c["name"] in personal:
                c["personal"] = personal[c["name"]]
        geometry = next((c for c in columns if c["geometry_type"]), None)
        count, extent = _count_and_extent(conn, table_name, geometry["name"] if geometry else None)
        conn.execute(
            text(
                "UPDATE layer_catalogue SET feature_count = :count, extent = :extent, "
                "fields = CAST(:fields AS jsonb), geometry_type = :gtype, last_loaded = :now WHERE id = :id"
            ),
            dict(
                count=count,
                extent=extent,
                fields=_json(columns),
                gtype=geometry["geometry_type"] if geometry else None,
                now=datetime.now(UTC),
                id=lid,
            ),
        )


def _count_and_extent(
    conn: Connection, table_name: str, geometry: str | None, where: str = "true", params=None
) -> tuple[int, list[float] | None]:
    extent_sql = f"ST_Extent({sql_ident(geometry)})" if geometry else "NULL::box2d"
    stats = conn.execute(
        text(
            f"SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
            f"FROM (SELECT count(*) AS n, {extent_sql} AS e FROM {sql_table(table_name)} t "
            f"WHERE {where}) s"
        ),
        params or {},
    ).one()
    extent = [float(v) for v in stats[1:]] if stats[1] is not None else None
    return int(stats[0]), extent


def register_base_layers(conn: Connection) -> None:
    for layer in BASE_LAYERS:
        register(conn, layer)
    for layer in BASE_LAYERS:
        refresh(conn, layer.id)


# --- reading the catalogue ---------------------------------------------------------------------

_CATALOGUE_SQL = (
    """
    SELECT id, table_name, title_zh, title_en, description, department, fields, access,
           opening_level, sharing_level, time_field, extent, feature_count, geometry_type,
           last_loaded, source_crs, update_frequency, xmin::text AS version,
           EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(table_name)
                   AND attname = '"""
    + TILE_GEOMETRY
    + """' AND NOT attisdropped) AS tile_geometry,
           EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(table_name)
                   AND attname = '"""
    + DISTRICT_COLUMN
    + """' AND NOT attisdropped) AS district_column
    FROM layer_catalogue
"""
)


def _from_row(row) -> Layer:
    return Layer(
        id=row.id,
        table=row.table_name,
        title_zh=row.title_zh,
        title_en=row.title_en,
        department=row.department,
        description=row.description,
        sharing_level=row.sharing_level,
        opening_level=row.opening_level,
        update_frequency=row.update_frequency,
        source_crs=row.source_crs,
        time_field=row.time_field,
        access=LayerAccess.from_json(row.access),
        columns=tuple(row.fields),
        feature_count=row.feature_count,
        extent=row.extent,
        geometry_type=row.geometry_type,
        last_loaded=row.last_loaded,
        version=row.version,
        tile_geometry=row.tile_geometry,
        district_column=row.district_column,
    )


def list_layers(conn: Connection, viewer: Viewer) -> list[Layer]:
    """Layers the viewer may know of (closed ones are hidden from anonymous callers)."""
    return [
        layer
        for layer in map(_from_row, conn.execute(text(f"{_CATALOGUE_SQL} ORDER BY id")))
        if may_list(viewer, layer.opening_level)
    ]


def get_layer(conn: Connection, layer_id: str, viewer: Viewer) -> Layer:
    """One layer, read afresh: every process sees a re-ingested layer's new fields at once."""
    row = conn.execute(text(f"{_CATALOGUE_SQL} WHERE id = :id"), {"id": layer_id}).first()
    if row is not None and may_list(viewer, row.opening_level):
        return _from_row(row)
    raise no_such_layer(layer_id)


def no_such_layer(layer_id: str) -> NotFound:
    """The answer for a layer that does not exist or that the caller may not know of (the same)."""
    return NotFound(f"no collection '{layer_id}': see /collections for the layers you may read")


def listed(layer: Layer | None, viewer: Viewer) -> bool:
    """Whether ``layer`` (None: not catalogued) exists for ``viewer``."""
    return layer is not None and may_list(viewer, layer.opening_level)


def layers_by_id(conn: Connection, layer_ids) -> dict[str, Layer | None]:
    """The catalogue entries of ``layer_ids`` in one query (None for an id not catalogued)."""
    rows = conn.execute(text(f"{_CATALOGUE_SQL} WHERE id = ANY(:ids)"), {"ids": list(layer_ids)})
    found = {row.id: _from_row(row) for row in rows}
    return {layer_id: found.get(layer_id) for layer_id in layer_ids}


def version_list(layers: dict[str, Layer | None]) -> list[str]:
    """``id@version`` of the catalogued ones, sorted: what :data:`VERSIONS_SQL` answers, sorted."""
    return sorted(f"{layer.id}@{layer.version}" for layer in layers.values() if layer)


#: the current ``id@version`` of the catalogued layers among ``:ids`` (sorted, in Python, this
#: is :func:`version_list` of the remembered layers when none has changed)
VERSIONS_SQL = """
    SELECT coalesce(array_agg(id || '@' || xmin::text), '{}')
    FROM layer_catalogue WHERE id = ANY(:ids)
"""


class LayerMemo:
    """The catalogue entries this process last read, by id (None: not catalogued). A reader that
    uses a remembered entry checks, in the same query that does its work, that the catalogue's
    versions are still :func:`version_list` of what it remembered: a re-ingested, re-opened or
    dropped layer is seen at once by every process."""

    def __init__(self) -> None:
        self._held: dict[str, Layer | None] = {}

    def remember(self, layers: dict[str, Layer | None]) -> None:
        self._held.update(layers)

    def recall(self, layer_ids) -> dict[str, Layer | None] | None:
        """The remembered entries of all ``layer_ids``, or None if any was never read."""
        held = self._held
        if any(layer_id not in held for layer_id in layer_ids):
            return None
        return {layer_id: held[layer_id] for layer_id in layer_ids}
