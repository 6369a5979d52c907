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
from geo.models import Base


class RecordError(Exception):
    """Why a record operation was refused. ``kind`` says which (the API maps it to a status):
    bad_request, invalid, forbidden, not_found, precondition_required, stale, conflict."""

    def __init__(self, kind: str, detail: str, **extra):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True)
class RecordType:
    name: str
    title_zh: str
    geometry: str | None  # the GeoJSON type the client sends; None when derived from a parent
    parent: str | None  # "house" or "building": where a derived geometry comes from
    required: tuple[str, ...]
    editable: tuple[str, ...]
    code: str | None = None  # a standard code the server allocates when it is left out

    @property
    def table(self) -> Table:
        return Base.metadata.tables[self.name]


TYPES: dict[str, RecordType] = {
    t.name: t
    for t in (
        RecordType(
            "addresses",
            "标准地址",
            "Point",
            None,
            ("full_name", "level"),
            (
                "code",
                "full_name",
                "aliases",
                "area_code",
                "road",
                "estate",
                "door_number",
                "building_number",
                "unit_number",
                "room_number",
                "level",
                "is_dwelling",
                "building_id",
            ),
            code="code",
        ),
        RecordType(
            "buildings",
            "标准建筑物",
            "Polygon",
            None,
            ("floors", "height_m", "use"),
            ("code", "name", "floors", "height_m", "use", "year_built", "estate"),
            code="code",
        ),
        RecordType(
            "houses",
            "实有房屋",
            None,
            "building",
            ("building_id", "room_number", "floor", "use", "tenure"),
            (
                "building_id",
                "address_id",
                "unit_number",
                "room_number",
                "floor",
                "area_m2",
                "use",
                "tenure",
            ),
        ),
        RecordType(
            "residents",
            "实有人口",
            None,
            "house",
            ("name", "id_number", "gender", "birth_date", "residence_type", "house_id"),
            (
                "name",
                "id_number",
                "phone",
                "gender",
                "birth_date",
                "residence_type",
                "relation",
                "house_id",
            ),
        ),
        RecordType(
            "organisations",
            "实有单位",
            "Point",
            None,
            ("name", "credit_code", "kind"),
            (
                "name",
                "credit_code",
                "kind",
                "industry",
                "employees",
                "legal_person",
                "contact_phone",
                "is_key_unit",
                "address_id",
                "building_id",
            ),
        ),
        RecordType(
            "facilities",
            "实有设施",
            "Point",
            None,
            ("kind", "name"),
            ("kind", "name", "capacity", "area_m2", "address_id"),
        ),
    )
}

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
        raise RecordError("not_found", f"no record type '{name}': choose one of {', '.join(TYPES)}")
    return TYPES[name]


def check_properties(rtype: RecordType, props: object, complete: bool) -> dict:
    """Type-check and format-check the properties a client sent; ``complete`` for create/replace."""
    if not isinstance(props, dict):
        raise RecordError("invalid", "properties must be a JSON object")
    unknown = sorted(set(props) - set(rtype.editable))
    if unknown:
        derived = {"id", "version", "created_at", "updated_at", "grid_code", "id_hash", "geom"}
        why = "set by the server" if set(unknown) <= derived else f"not fields of {rtype.name}"
        raise RecordError(
            "invalid",
            f"{', '.join(unknown)}: {why}; editable fields are {', '.join(rtype.editable)}",
        )
    if complete:
        missing = [f for f in rtype.required if props.get(f) is None]
        if missing:
            raise RecordError("invalid", f"{rtype.name} needs {', '.join(missing)}")
    else:
        nulled = [f for f in rtype.required if f in props and props[f] is None]
        if nulled:
            raise RecordError("invalid", f"{', '.join(nulled)} may not be emptied")
    out = {}
    for name, value in props.items():
        out[name] = _check_value(rtype, name, value)
    return out


def _check_value(rtype: RecordType, name: str, value):
    column = rtype.table.c[name]
    if value is None:
        if not column.nullable:
            raise RecordError("invalid", f"{name} may not be null")
        return None
    try:
        expected = column.type.python_type
    except NotImplementedError:  # pragma: no cover - every editable column has one
        expected = str
    if expected is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RecordError("invalid", f"{name} must be a list of texts")
        for item in value:
            _check_text(name, item, 200)
        return value
    if expected is str:
        if not isinstance(value, str):
            raise RecordError("invalid", f"{name} must be text, not {type(value).__name__}")
        _check_text(name, value, getattr(column.type, "length", None))
        if name in FORMATS and not FORMATS[name][0](value):
            raise RecordError("invalid", f"{name} '{value}' is not {FORMATS[name][1]}")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            raise RecordError("invalid", f"{name} must be true or false")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError("invalid", f"{name} must be a whole number")
        if not -(2**62) < value < 2**62:
            raise RecordError("invalid", f"{name} is out of range")
        return value
    if expected in (float, Decimal):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise RecordError("invalid", f"{name} must be a number")
        if abs(value) >= 1e9:
            raise RecordError("invalid", f"{name} is out of range")
        return value
    if expected is date:
        if not isinstance(value, str):
            raise RecordError("invalid", f"{name} must be a date written YYYY-MM-DD")
        try:
            day = date.fromisoformat(value)
        except ValueError as exc:
            raise RecordError(
                "invalid", f"{name} '{value}' is not a date written YYYY-MM-DD"
            ) from exc
        if not date(1900, 1, 1) <= day <= date.today():
            raise RecordError("invalid", f"{name} {value} is not a plausible date")
        return value
    raise RecordError("invalid", f"{name} cannot be set")  # pragma: no cover


def _check_text(name: str, value: str, length: int | None) -> None:
    if length is not None and len(value) > length:
        raise RecordError("invalid", f"{name} is longer than {length} characters")
    if not value.strip():
        raise RecordError("invalid", f"{name} may not be blank")
    bad = UNSAFE_TEXT.search(value)
    if bad:
        raise RecordError(
            "invalid", f"{name} contains {bad.group()!r}, which standard data does not use"
        )


def check_geometry(rtype: RecordType, geometry: object):
    """A GeoJSON geometry in CGCS2000 lon/lat (EPSG:4490, or CRS84) as a valid shapely shape."""
    if rtype.geometry is None:
        if geometry is not None:
            parent = "its house" if rtype.parent == "house" else "its building"
            raise RecordError(
                "invalid", f"a {rtype.name[:-1]} takes its position from {parent}: send no geometry"
            )
        return None
    if not isinstance(geometry, dict) or "type" not in geometry or "coordinates" not in geometry:
        raise RecordError(
            "invalid", f"geometry must be a GeoJSON {rtype.geometry} with coordinates"
        )
    if geometry["type"] != rtype.geometry:
        raise RecordError(
            "invalid", f"{rtype.name} need a {rtype.geometry} geometry, not {geometry['type']}"
        )
    flat = _numbers(geometry["coordinates"])
    if flat is None or not flat:
        raise RecordError("invalid", "coordinates must be numbers")
    xs, ys = flat[0::2], flat[1::2]
    if any(abs(x) > 180 for x in xs) or any(abs(y) > 90 for y in ys):
        raise RecordError(
            "invalid",
            f"coordinates ({xs[0]}, {ys[0]}) look like metres (a projected CRS such as EPSG:4549): "
            "send longitude and latitude in CGCS2000 (EPSG:4490)",
        )
    if geometry["type"] == "Polygon":
        rings = geometry["coordinates"]
        if not all(len(r) >= 4 and r[0] == r[-1] for r in rings):
            raise RecordError(
                "invalid",
                "each polygon ring needs at least four positions, the last equal to the first",
            )
    try:
        geom = shape(geometry)
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise RecordError("invalid", f"geometry could not be read: {exc}") from exc
    if geom.is_empty:
        raise RecordError("invalid", "geometry is empty")
    if not geom.is_valid:
        raise RecordError("invalid", f"geometry is invalid: {shapely.is_valid_reason(geom)}")
    return geom


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
        if not re.search(r"(4490|4326|CRS84)$", name):
            raise RecordError(
                "bad_request", f"coordinate system {name!r} is not accepted: send EPSG:4490 lon/lat"
            )
