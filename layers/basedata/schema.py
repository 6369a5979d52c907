"""What each base table takes from a district's files: its standard fields (their types, lengths,
bounds and enumerations, read off the models so that the import and the database agree), the
references a row makes to rows of other tables, and how its codes are made when missing.

A reference is named by the parent's noun (``building``, ``grid``, ``house`` …) and holds the
parent's *key* as the source file writes it: the parent's code, its id, or whatever column the
manifest names as the parent's key. The import turns it into the stored column (``building_id``,
``grid_code`` …).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Integer,
    Numeric,
    SmallInteger,
    String,
    Text,
)

from geo import codes, district
from geo.models.standards import ADDRESS_LEVELS

_ENUM_CHECK = re.compile(r"^\(?(\w+) IN \((.*)\)\)?$")


@dataclass(frozen=True)
class Reference:
    """A row's pointer to a row of another table, and the column it is stored in."""

    parent: str  # the parent table
    stored: str  # the column written (building_id, grid_code …)
    target: str  # the parent's column it holds: "id" or "code"
    required: bool = False


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # text, integer, number, boolean, date, datetime, list
    required: bool
    length: int | None = None  # the most characters a text may hold
    bound: float | None = None  # a number's absolute value must stay below it (numeric(p, s))
    scale: int | None = None
    allowed: tuple[str | int, ...] | None = None  # an enumeration's values


@dataclass(frozen=True)
class TableSpec:
    name: str
    fields: dict[str, FieldSpec]
    references: dict[str, Reference] = field(default_factory=dict)
    geometry: str | None = None  # POINT, POLYGON, MULTIPOLYGON, LINESTRING; None: no geometry
    #: where a missing geometry comes from: the point of a referenced parent
    geometry_from: tuple[str, ...] = ()
    #: standard fields the import fills itself when the file leaves them out
    derived: frozenset[str] = frozenset()
    code: str | None = None  # the code column, if the table has standard codes

    @property
    def standard(self) -> tuple[str, ...]:
        return tuple(self.fields) + tuple(self.references)


def _kind(column) -> str:
    t = column.type
    if isinstance(t, ARRAY):
        return "list"
    if isinstance(t, Boolean):
        return "boolean"
    if isinstance(t, DateTime):
        return "datetime"
    if isinstance(t, Date):
        return "date"
    if isinstance(t, Integer | SmallInteger | BigInteger):
        return "integer"
    if isinstance(t, Numeric | Double):
        return "number"
    if isinstance(t, String | Text):
        return "text"
    raise TypeError(f"{column.table.name}.{column.name}: no import kind for {t!r}")


def _enumerations(table) -> dict[str, tuple]:
    """``col IN (...)`` checks of the model: the values each enumerated column may hold."""
    out: dict[str, tuple] = {}
    for constraint in table.constraints:
        sql = str(getattr(constraint, "sqltext", "")).strip()
        match = _ENUM_CHECK.match(sql)
        if match:
            values = tuple(v.strip().strip("'") for v in match.group(2).split(","))
            out[match.group(1)] = tuple(v for v in values if v)
    return out


#: references each table makes, by the parent's noun
REFERENCES: dict[str, dict[str, Reference]] = {
    "admin_areas": {"parent": Reference("admin_areas", "parent_code", "code")},
    "grids": {"community": Reference("admin_areas", "community_code", "code")},
    "buildings": {"grid": Reference("grids", "grid_code", "code")},
    "addresses": {
        "building": Reference("buildings", "building_id", "id"),
        "grid": Reference("grids", "grid_code", "code"),
        "area": Reference("admin_areas", "area_code", "code"),
    },
    "houses": {
        "building": Reference("buildings", "building_id", "id"),
        "address": Reference("addresses", "address_id", "id"),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "residents": {
        "house": Reference("houses", "house_id", "id", required=True),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "organisations": {
        "building": Reference("buildings", "building_id", "id"),
        "address": Reference("addresses", "address_id", "id"),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "facilities": {
        "address": Reference("addresses", "address_id", "id"),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "hazards": {
        "organisation": Reference("organisations", "organisation_id", "id"),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "inspections": {
        "hazard": Reference("hazards", "hazard_id", "id"),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "sensors": {"grid": Reference("grids", "grid_code", "code")},
    "sensor_readings": {"sensor": Reference("sensors", "sensor_id", "id", required=True)},
    "assets": {
        "area": Reference("admin_areas", "area_code", "code"),
        "grid": Reference("grids", "grid_code", "code"),
    },
    "asset_status_history": {"asset": Reference("assets", "asset_id", "id", required=True)},
}
#: a row without its own geometry takes the point of the first of these parents it references
GEOMETRY_FROM = {
    "addresses": ("building",),
    "houses": ("address", "building"),
    "residents": ("house",),
    "organisations": ("address", "building"),
    "facilities": ("address",),
    "hazards": ("organisation",),
    "inspections": ("hazard",),
}
#: fields the import works out when the file leaves them out (geo knowledge, not guesses)
DERIVED = {
    "admin_areas": {"code", "level", "kind"},
    "grids": {"code", "name"},
    "buildings": {"code", "floors", "height_m", "use"},
    "addresses": {"code", "level", "is_dwelling", "aliases"},
    "houses": {"floor", "use", "tenure"},
    "residents": {"id_hash", "birth_date", "gender", "residence_type"},
    "organisations": {"kind", "is_key_unit"},
    "landuse_parcels": {"area_m2"},
    "roads": {"length_m"},
    "water": {"area_m2"},
    "parks": {"area_m2"},
    "hazards": {"code", "status"},
    "sensors": {"code", "status"},
    "assets": {"code", "land_area_m2", "floor_area_m2", "page_views"},
}
CODE_COLUMNS = {
    "admin_areas": "code",
    "grids": "code",
    "buildings": "code",
    "addresses": "code",
    "hazards": "code",
    "sensors": "code",
    "assets": "code",
}
#: codes whose format the database checks, for a clear message before it does
CODE_FORMATS = {
    ("admin_areas", "code"): codes.AREA_CODE,
    ("grids", "code"): codes.GRID_CODE,
    ("buildings", "code"): codes.BUILDING_CODE,
    ("addresses", "code"): codes.ADDRESS_CODE,
    ("residents", "id_number"): codes.ID_NUMBER,
    ("organisations", "credit_code"): codes.CREDIT_CODE,
    ("hazards", "code"): codes.HAZARD_CODE,
    ("sensors", "code"): codes.SENSOR_CODE,
    ("assets", "code"): codes.ASSET_CODE,
}


def _spec(name: str) -> TableSpec:
    table = district.table(name)
    refs = REFERENCES.get(name, {})
    stored = {r.stored for r in refs.values()}
    derived = frozenset(DERIVED.get(name, ()))
    enums = _enumerations(table)
    if name == "addresses":
        enums["level"] = ADDRESS_LEVELS
    fields: dict[str, FieldSpec] = {}
    geometry = None
    for column in table.columns:
        if column.name in district.BOOKKEEPING + district.WORKING or column.name in stored:
            continue
        if column.name == "geom":
            geometry = column.type.geometry_type
            continue
        kind = _kind(column)
        length = getattr(column.type, "length", None) if kind == "text" else None
        bound = scale = None
        if isinstance(column.type, Numeric) and not isinstance(column.type, Double):
            precision, scale = column.type.precision, column.type.scale or 0
            bound = 10.0 ** (precision - scale) if precision else None
        required = (
            not column.nullable
            and column.server_default is None
            and column.name not in derived
            and column.name != "id"
        )
        allowed = enums.get(column.name)
        if name == "admin_areas" and column.name == "level":
            allowed = (1, 2, 3)
        if name == "hazards" and column.name == "level":
            allowed = (1, 2, 3, 4)
        fields[column.name] = FieldSpec(column.name, kind, required, length, bound, scale, allowed)
    return TableSpec(
        name=name,
        fields=fields,
        references=refs,
        geometry=geometry,
        geometry_from=GEOMETRY_FROM.get(name, ()),
        derived=derived,
        code=CODE_COLUMNS.get(name),
    )


SPECS: dict[str, TableSpec] = {name: _spec(name) for name in district.TABLES}
