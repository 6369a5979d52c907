"""The layer catalogue (资源目录, "one table" 一张表): every layer of the one map, whoever owns it.

Each layer has one entry: titles, owning department, geometry type, CRS of origin, update
frequency, when it was last loaded, feature count, extent, its fields with types, which fields are
personal data (and how each is masked), which are internal, and its sharing level between
departments and opening level to the public (国发〔2016〕51号). Entries live in PostGIS
(``layer_catalogue``) so that every process reads the same catalogue.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.privacy import PERSONAL_FIELDS

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
#: fields no one outside the database needs: bookkeeping and keyed hashes
NEVER_SERVED = frozenset({"id_hash"})


@dataclass(frozen=True)
class LayerSpec:
    """How a layer is described and shared. ``personal`` maps a field to its mask kind
    (name, phone, id_number, see geo.privacy); ``internal`` fields are hidden from the public."""

    id: str
    table: str
    title_zh: str
    title_en: str
    department: str
    description: str
    sharing_level: str = "unconditional"
    opening_level: str = "open"
    update_frequency: str = "daily"
    source_crs: str = "EPSG:4490"
    personal: dict[str, str] = field(default_factory=dict)
    internal: tuple[str, ...] = ()
    time_field: str | None = None


RECORDS_DEPT = "区社会治理现代化指挥中心 (grid management centre)"
NATURAL_RESOURCES = "区自然资源和规划局 (natural resources bureau)"
EMERGENCY = "区应急管理局 (emergency management bureau)"
INVESTMENT = "区投资促进中心 (investment promotion centre)"

BASE_LAYERS: tuple[LayerSpec, ...] = (
    LayerSpec(
        "admin_areas",
        "admin_areas",
        "行政区划",
        "Administrative areas",
        NATURAL_RESOURCES,
        "District, streets/towns and communities/villages with 12-digit statistical codes.",
        update_frequency="yearly",
    ),
    LayerSpec(
        "grids",
        "grids",
        "标准基础网格",
        "Standard grids",
        RECORDS_DEPT,
        "The grid workers' patches; codes extend the community code.",
        update_frequency="monthly",
    ),
    LayerSpec(
        "buildings",
        "buildings",
        "标准建筑物",
        "Standard buildings",
        NATURAL_RESOURCES,
        "Building footprints keyed by the standard building code.",
    ),
    LayerSpec(
        "addresses",
        "addresses",
        "标准地址",
        "Standard addresses",
        RECORDS_DEPT,
        "Standard address library: road, door plate, building and unit levels.",
        opening_level="restricted",
    ),
    LayerSpec(
        "houses",
        "houses",
        "实有房屋",
        "Actual houses",
        RECORDS_DEPT,
        "Dwellings and premises in standard buildings.",
        sharing_level="conditional",
        opening_level="restricted",
    ),
    LayerSpec(
        "residents",
        "residents",
        "实有人口",
        "Actual residents",
        RECORDS_DEPT,
        "People living in the district's houses. Personal data: masked unless the role may see it.",
        sharing_level="conditional",
        opening_level="closed",
        personal=PERSONAL_FIELDS["residents"],
    ),
    LayerSpec(
        "organisations",
        "organisations",
        "实有单位",
        "Actual organisations",
        RECORDS_DEPT,
        "Enterprises, offices, schools and shops with their unified social credit codes.",
        opening_level="restricted",
        personal=PERSONAL_FIELDS["organisations"],
    ),
    LayerSpec(
        "facilities",
        "facilities",
        "实有设施",
        "Actual facilities",
        RECORDS_DEPT,
        "Schools, clinics, elderly care, fire stations, hydrants, shelters, cameras and more.",
    ),
    LayerSpec(
        "landuse_parcels",
        "landuse_parcels",
        "地类图斑",
        "Land-use parcels",
        NATURAL_RESOURCES,
        "Land-use parcels classed by GB/T 21010-2017.",
        update_frequency="yearly",
    ),
    LayerSpec(
        "roads",
        "roads",
        "道路",
        "Roads",
        NATURAL_RESOURCES,
        "Road centre lines by class.",
        update_frequency="yearly",
    ),
    LayerSpec(
        "water",
        "water",
        "水系",
        "Water",
        NATURAL_RESOURCES,
        "Rivers, lakes, reservoirs and ponds.",
        update_frequency="yearly",
    ),
    LayerSpec(
        "parks",
        "parks",
        "公园绿地",
        "Parks",
        NATURAL_RESOURCES,
        "Parks and green spaces.",
        update_frequency="yearly",
    ),
    LayerSpec(
        "hazards",
        "hazards",
        "安全隐患",
        "Hazards",
        EMERGENCY,
        "Hazards by category and level with their rectification deadlines.",
        sharing_level="conditional",
        opening_level="restricted",
        time_field="found_at",
    ),
    LayerSpec(
        "inspections",
        "inspections",
        "检查记录",
        "Inspections",
        EMERGENCY,
        "Leader night checks, department checks and grid patrols.",
        sharing_level="conditional",
        opening_level="restricted",
        personal=PERSONAL_FIELDS["inspections"],
        time_field="inspected_at",
    ),
    LayerSpec(
        "sensors",
        "sensors",
        "物联感知设备",
        "Sensors",
        EMERGENCY,
        "IoT sensors (water level, smoke, gas …) with alarm thresholds.",
        opening_level="restricted",
        time_field="installed_at",
    ),
    LayerSpec(
        "assets",
        "assets",
        "存量资产",
        "Idle assets",
        INVESTMENT,
        "Idle assets for investment promotion in four categories.",
        opening_level="restricted",
        personal=PERSONAL_FIELDS["assets"],
        internal=("reserve_price_wan", "contact_name", "contact_phone", "notes"),
    ),
)


def register(conn: Connection, spec: LayerSpec) -> None:
    """Insert or update a layer's descriptive entry (counts and extent come from :func:`refresh`)."""
    conn.execute(
        text("""
        INSERT INTO layer_catalogue (id, table_name, title_zh, title_en, department, description,
            source_crs, update_frequency, personal_fields, internal_fields, time_field,
            sharing_level, opening_level, fields)
        VALUES (:id, :table, :title_zh, :title_en, :department, :description, :source_crs,
            :update_frequency, :personal, :internal, :time_field, :sharing, :opening,
            CAST(:fields AS jsonb))
        ON CONFLICT (id) DO UPDATE SET table_name = EXCLUDED.table_name,
            title_zh = EXCLUDED.title_zh, title_en = EXCLUDED.title_en,
            department = EXCLUDED.department, description = EXCLUDED.description,
            source_crs = EXCLUDED.source_crs, update_frequency = EXCLUDED.update_frequency,
            personal_fields = EXCLUDED.personal_fields, internal_fields = EXCLUDED.internal_fields,
            time_field = EXCLUDED.time_field, sharing_level = EXCLUDED.sharing_level,
            opening_level = EXCLUDED.opening_level, fields = EXCLUDED.fields
        """),
        dict(
            id=spec.id,
            table=spec.table,
            title_zh=spec.title_zh,
            title_en=spec.title_en,
            department=spec.department,
            description=spec.description,
            source_crs=spec.source_crs,
            update_frequency=spec.update_frequency,
            personal=list(spec.personal),
            internal=list(spec.internal),
            time_field=spec.time_field,
            sharing=spec.sharing_level,
            opening=spec.opening_level,
            fields=_json(_mask_kinds(spec)),
        ),
    )


def _mask_kinds(spec: LayerSpec) -> list[dict]:
    # stored until refresh() replaces it with the full field list
    return [{"name": name, "personal": kind} for name, kind in spec.personal.items()]


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def table_fields(conn: Connection, table: str) -> list[dict]:
    """The table's columns with JSON types, in table order; geometry last as ``geom``."""
    schema, _, name = table.rpartition(".")
    rows = conn.execute(
        text("""
        SELECT c.column_name, c.data_type, c.is_nullable = 'YES' AS nullable,
               coalesce(g.type, '') AS geometry_type
        FROM information_schema.columns c
        LEFT JOIN geometry_columns g ON g.f_table_schema = c.table_schema
             AND g.f_table_name = c.table_name AND g.f_geometry_column = c.column_name
        WHERE c.table_schema = :schema AND c.table_name = :name
        ORDER BY c.ordinal_position
        """),
        dict(schema=schema or "public", name=name),
    ).mappings()
    return [
        dict(
            name=r["column_name"],
            type=JSON_TYPES.get(r["data_type"], "string"),
            db_type=r["data_type"],
            nullable=r["nullable"],
            geometry_type=r["geometry_type"] or None,
        )
        for r in rows
    ]


def refresh(conn: Connection, layer_id: str | None = None) -> None:
    """Recount features, recompute extent and field list, stamp last loaded."""
    ids = (
        [layer_id]
        if layer_id
        else [r[0] for r in conn.execute(text("SELECT id FROM layer_catalogue"))]
    )
    for lid in ids:
        row = conn.execute(
            text("SELECT table_name, personal_fields FROM layer_catalogue WHERE id = :id"),
            dict(id=lid),
        ).one()
        table, personal = row
        kinds = dict(
            conn.execute(
                text(
                    "SELECT f->>'name', f->>'personal' FROM layer_catalogue, jsonb_array_elements(fields) f "
                    "WHERE id = :id AND f ? 'personal'"
                ),
                dict(id=lid),
            ).all()
        )
        fields = table_fields(conn, table)
        for f in fields:
            if f["name"] in personal:
                f["personal"] = kinds.get(f["name"]) or _guess_mask(f["name"])
        geometry = next((f for f in fields if f["geometry_type"]), None)
        quoted = _quote_table(table)
        extent_sql = f"ST_Extent({geometry['name']})" if geometry else "NULL::box2d"
        stats = conn.execute(
            text(
                f"SELECT n, ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) "
                f"FROM (SELECT count(*) AS n, {extent_sql} AS e FROM {quoted}) s"
            )
        ).one()
        count = int(stats[0])
        extent = [float(v) for v in stats[1:]] if stats[1] is not None else None
        conn.execute(
            text(
                "UPDATE layer_catalogue SET feature_count = :count, extent = :extent, "
                "fields = CAST(:fields AS jsonb), geometry_type = :gtype, last_loaded = :now WHERE id = :id"
            ),
            dict(
                count=count,
                extent=extent,
                fields=_json(fields),
                gtype=geometry["geometry_type"] if geometry else None,
                now=datetime.now(UTC),
                id=lid,
            ),
        )


def _guess_mask(field_name: str) -> str:
    if "phone" in field_name:
        return "phone"
    if "id_number" in field_name:
        return "id_number"
    return "name"


def _quote_table(table: str) -> str:
    """Catalogue table names are ours (checked identifiers), quoted part by part."""
    return ".".join(f'"{part}"' for part in table.split("."))


def register_base_layers(conn: Connection) -> None:
    for spec in BASE_LAYERS:
        register(conn, spec)
    for spec in BASE_LAYERS:
        refresh(conn, spec.id)
