"""The six 四标四实 record types the grid workers edit, and how their input is checked.

Input is checked here before the database sees it, so that a person gets a message they can act on
("id_number: the GB 11643 check character should be X"), and the database's own constraints
remain the last line. Text fields refuse characters that have no place in standard data (quotes,
semicolons, angle brackets, comment markers): they are how injection payloads travel on to the
systems our exports feed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import shapely
from shapely.geometry import shape
from sqlalchemy import Table

from geo import codes
from geo.errors import BadRequest, Invalid, NotFound, TooLarge
from geo.models import Base, access_of
from geo.policy.plan import ReadPlan, plan_read
from geo.policy.roles import Viewer
from geo.settings import DEMO_ID_HASH_KEY, Settings

#: columns the server sets itself: keys, bookkeeping, the grid a record lies in, keyed hashes
SERVER_SET = frozenset(
    {"id", "version", "created_at", "updated_at", "grid_code", "id_hash", "geom"}
)


@dataclass(frozen=True)
class EditRules:
    """What the settings say about editing, handed down from where the program starts:
    which types wait for review, the key of the identity hash, the largest sync batch."""

    review_types: frozenset[str] = frozenset({"residents", "houses"})
    id_hash_key: str = DEMO_ID_HASH_KEY
    max_sync_edits: int = 5_000
    timeout_ms: int | None = None  # statement_timeout of one edit's transaction

    @classmethod
    def from_settings(cls, settings: Settings) -> EditRules:
        return cls(
            review_types=settings.review.review_type_list,
            id_hash_key=settings.secrets.id_hash_key,
            max_sync_edits=settings.limits.max_sync_edits,
            timeout_ms=settings.limits.write_timeout_ms,
        )


@dataclass(frozen=True)
class Change:
    """One asked-for change to one record: the type, the action (create, replace, update,
    delete, restore), which record, the version it was based on, and the new content."""

    rtype: RecordType
    action: str
    record_id: int | None = None
    if_match: int | None = None
    properties: dict | None = None
    geometry: dict | None = None


@dataclass(frozen=True)
class RecordType:
    name: str
    title_zh: str
    geometry: str | None  # the GeoJSON type the client sends; None when derived from a parent
    parent: str | None  # "house" or "building": where a derived geometry comes from
    required: tuple[str, ...]
    code: str | None = None  # a standard code the server allocates when it is left out

    @property
    def table(self) -> Table:
        return Base.metadata.tables[self.name]

    @property
    def editable(self) -> tuple[str, ...]:
        """The fields a client may send: the table's columns, less what the server sets."""
        return tuple(c.name for c in self.table.columns if c.name not in SERVER_SET)

    def plan(self, viewer: Viewer, purpose: str | None = None) -> ReadPlan:
        """What ``viewer`` sees of these records: the same read plan, from the same declaration
        (the model's ``__access__``), as the features path applies to the layer."""
        columns = [c.name for c in self.table.columns]
        return plan_read(self.name, access_of(self.name), columns, viewer, purpose)


TYPES: dict[str, RecordType] = {
    t.name: t
    for t in (
        RecordType("addresses", "标准地址", "Point", None, ("full_name", "level"), code="code"),
        RecordType(
            "buildings", "标准建筑物", "Polygon", None, ("floors", "height_m", "use"), code="code"
        ),
        RecordType(
            "houses",
            "实有房屋",
            None,
            "building",
            ("building_id", "room_number", "floor", "use", "tenure"),
        ),
        RecordType(
            "residents",
            "实有人口",
            None,
            "house",
            ("name", "id_number", "gender", "birth_date", "residence_type", "house_id"),
        ),
        RecordType("organisations", "实有单位", "Point", None, ("name", "credit_code", "kind")),
        RecordType("facilities", "实有设施", "Point", None, ("kind", "name")),
    )
}

#: the names of CGCS2000 / WGS 84 longitude-latitude a GeoJSON ``crs`` member may give, exactly
LONLAT_CRS = re.compile(
    r"(EPSG:|urn:ogc:def:crs:EPSG::|https?://www\.opengis\.net/def/crs/EPSG/0/)(4490|4326)"
    r"|(urn:ogc:def:crs:OGC:1\.3:|https?://www\.opengis\.net/def/crs/OGC/1\.3/)?CRS84"
)
#: the most vertices one record's geometry may have
MAX_VERTICES = 10_000
UNSAFE_TEXT = re.compile(r"['\"`;\\<>\x00-\x1f\x7f]|--|/\*|\*/")
REFERENCES = {"building_id": "buildings", "house_id": "houses", "address_id": "addresses"}
FORMATS = {  # field → (check, message)
    "id_number": (
        codes.valid_id_number,
        "an 18-character GB 11643 identity number with a valid check character",
    ),
    "phone": (lambda v: codes.matches(codes.PHONE, v), "an 11-digit mobile number starting 13–19"),
    "contact_phone": (
        lambda v: codes.matches(codes.PHONE, v),
        "an 11-digit mobile number starting 13–19",
    ),
    "credit_code": (
        codes.valid_credit_code,
        "an 18-character GB 32100 unified social credit code with a valid check",
    ),
    "area_code": (lambda v: codes.matches(codes.AREA_CODE, v), "a 12-digit area code"),
}


def record_type(name: str) -> RecordType:
    if name not in TYPES:
        raise NotFound(f"no record type '{name}': choose one of {', '.join(TYPES)}")
    return TYPES[name]


def check_properties(rtype: RecordType, props: object, complete: bool) -> dict:
    """Type-check and format-check the properties a client sent; ``complete`` for create/replace."""
    if not isinstance(props, dict):
        raise Invalid("properties must be a JSON object")
    unknown = sorted(set(props) - set(rtype.editable))
    if unknown:
        derived = SERVER_SET
        why = "set by the server" if set(unknown) <= derived else f"not fields of {rtype.name}"
        raise Invalid(
            f"{', '.join(unknown)}: {why}; editable fields are {', '.join(rtype.editable)}",
        )
    if complete:
        missing = [f for f in rtype.required if props.get(f) is None]
        if missing:
            raise Invalid(f"{rtype.name} needs {', '.join(missing)}")
    else:
        nulled = [f for f in rtype.required if f in props and props[f] is None]
        if nulled:
            raise Invalid(f"{', '.join(nulled)} may not be emptied")
    out = {}
    for name, value in props.items():
        out[name] = _check_value(rtype, name, value)
    return out


def _check_value(rtype: RecordType, name: str, value):
    column = rtype.table.c[name]
    if value is None:
        if not column.nullable:
            raise Invalid(f"{name} may not be null")
        return None
    try:
        expected = column.type.python_type
    except NotImplementedError:  # pragma: no cover - every editable column has one
        expected = str
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise Invalid(f"{name} must be a list of texts")
        for item in value:
            _check_text(name, item, 200)
        return value
    if expected is str:
        if not isinstance(value, str):
            raise Invalid(f"{name} must be text, not {type(value).__name__}")
        _check_text(name, value, getattr(column.type, "length", None))
        if name in FORMATS and not FORMATS[name][0](value):
            raise Invalid(f"{name} '{value}' is not {FORMATS[name][1]}")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            raise Invalid(f"{name} must be true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"{name} must be a whole number")
        if not -(2**62) < value < 2**62:
            raise Invalid(f"{name} is out of range")
        return value
    if expected in (float, Decimal):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise Invalid(f"{name} must be a number")
        if abs(value) >= 1e9:
            raise Invalid(f"{name} is out of range")
        return value
    if expected is date:
        if not isinstance(value, str):
            raise Invalid(f"{name} must be a date written YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise Invalid(f"{name} '{value}' is not a date written YYYY-MM-DD") from exc
        if not date(1900, 1, 1) <= day <= date.today():
            raise Invalid(f"{name} {value} is not a plausible date")
        return value
    raise Invalid(f"{name} cannot be set")  # pragma: no cover


def _check_text(name: str, value: str, length: int | None) -> None:
    if length is not None and len(value) > length:
        raise Invalid(f"{name} is longer than {length} characters")
    if not value.strip():
        raise Invalid(f"{name} may not be blank")
    bad = UNSAFE_TEXT.search(value)
    if bad:
        raise Invalid(f"{name} contains {bad.group()!r}, which standard data does not use")


def check_geometry(rtype: RecordType, geometry: object):
    """A GeoJSON geometry in CGCS2000 lon/lat (EPSG:4490, or CRS84) as a valid shapely shape."""
    if rtype.geometry is None:
        if geometry is not None:
            parent = "its house" if rtype.parent == "house" else "its building"
            raise Invalid(f"a {rtype.name[:-1]} takes its position from {parent}: send no geometry")
        return None
    if not isinstance(geometry, dict) or "type" not in geometry or "coordinates" not in geometry:
        raise Invalid(f"geometry must be a GeoJSON {rtype.geometry} with coordinates")
    if geometry["type"] != rtype.geometry:
        raise Invalid(f"{rtype.name} need a {rtype.geometry} geometry, not {geometry['type']}")
    if not _well_formed(rtype.geometry, geometry["coordinates"]):
        shape_of = {
            "Point": "[longitude, latitude]",
            "Polygon": "[[[lon, lat], [lon, lat], …]] (rings of positions)",
        }[rtype.geometry]
        raise Invalid(f"a {rtype.geometry}'s coordinates are {shape_of}")
    flat = _numbers(geometry["coordinates"])
    if flat is None or not flat:
        raise Invalid("coordinates must be numbers")
    if len(flat) // 2 > MAX_VERTICES:
        raise TooLarge(f"the geometry has more than {MAX_VERTICES:,} vertices: simplify it")
    xs, ys = flat[0::2], flat[1::2]
    if any(abs(x) > 180 for x in xs) or any(abs(y) > 90 for y in ys):
        raise Invalid(
            f"coordinates ({xs[0]}, {ys[0]}) look like metres (a projected CRS such as EPSG:4549): "
            "send longitude and latitude in CGCS2000 (EPSG:4490)",
        )
    if geometry["type"] == "Polygon":
        rings = geometry["coordinates"]
        if not all(len(r) >= 4 and r[0] == r[-1] for r in rings):
            raise Invalid(
                "each polygon ring needs at least four positions, the last equal to the first",
            )
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise Invalid(f"geometry could not be read: {exc}") from exc
    if geom.is_empty:
        raise Invalid("geometry is empty")
    if not geom.is_valid:
        raise Invalid(f"geometry is invalid: {shapely.is_valid_reason(geom)}")
    return geom


def _position(value) -> bool:
    return (
        isinstance(value, list)
        and len(value) in (2, 3)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _well_formed(geometry_type: str, coords) -> bool:
    """The coordinates nest as the type says: a Point one position, a Polygon rings of them."""
    if geometry_type == "Point":
        return _position(coords)
    return (
        isinstance(coords, list)
        and bool(coords)
        and all(isinstance(ring, list) and all(_position(p) for p in ring) for ring in coords)
    )


def _numbers(coords) -> list[float] | None:
    out: list[float] = []

    def walk(node) -> bool:
        if isinstance(node, bool):
            return False
        if isinstance(node, int | float):
            if not math.isfinite(node):
                return False
            out.append(float(node))
            return True
        if isinstance(node, list) and node:
            if all(isinstance(n, int | float) and not isinstance(n, bool) for n in node):
                if len(node) not in (2, 3):
                    return False
                return all(walk(n) for n in node[:2])
            return all(walk(n) for n in node)
        return False

    return out if walk(coords) else None


def check_crs(feature: dict) -> None:
    """Only CGCS2000 / CRS84 longitude-latitude are accepted (GeoJSON has no other)."""
    for holder in (
        feature,
        feature.get("geometry") if isinstance(feature.get("geometry"), dict) else {},
    ):
        crs = holder.get("crs") if isinstance(holder, dict) else None
        if crs is None:
            continue
        name = (
            str((crs.get("properties") or {}).get("name", ""))
            if isinstance(crs, dict)
            else str(crs)
        )
        if not LONLAT_CRS.fullmatch(name.strip()):
            raise BadRequest(
                f"coordinate system {name[:80]!r} is not accepted: send EPSG:4490 lon/lat"
            )
