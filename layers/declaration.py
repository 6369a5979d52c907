"""How a departmental layer is declared: its source fields, standard fields, matching and sharing.

A department hands over a file whose columns it names its own way (名称, 经度, DLBM …). The
declaration says which source columns feed which standard field (Chinese source names → English
field names), which field is the layer's own key, which standard data each feature is matched to
(grid, building, address), which fields are personal and how each is masked, and the layer's
sharing level between departments and opening level to the public (国发〔2016〕51号). Ingest
reads nothing else: a file for a layer that is not declared is refused.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from geo.errors import BadRequest
from geo.policy.access import LayerAccess
from layers.catalogue import OPENING_ZH, SHARING_ZH, Ingest, Layer

#: layer ids become table names: checked, then quoted wherever they are used in SQL
LAYER_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
#: room left in a 63-byte PostgreSQL name for the ``__new`` table and ``_geom_idx`` index names
MAX_LAYER_ID = 40
FIELD_TYPES = ("text", "integer", "number", "date")
MATCHES = ("grid", "building", "address")
MASK_KINDS = ("name", "phone", "id_number", "birth_date")
#: columns ingest adds itself besides ``id`` and ``geom``: what matching finds
MATCH_COLUMNS = (
    "grid_code",
    "building_code",
    "building_distance_m",
    "address_code",
    "address_match",
    "address_distance_m",
)
RESERVED = frozenset({"id", "geom", *MATCH_COLUMNS})
#: the schema departmental tables live in (migration 0002)
SCHEMA = "layers"


class SpecError(BadRequest):
    """A declaration that cannot work (a programming error in a layer module)."""


def check_identifier(name: str, what: str = "layer id") -> str:
    """The name itself if it may be used as a table or column name, else SpecError."""
    if not LAYER_ID.fullmatch(name or ""):
        raise SpecError(
            f"{what} {name!r} must be 2-63 lower-case letters, digits and underscores, "
            "starting with a letter"
        )
    return name


@dataclass(frozen=True)
class Field:
    """One standard field: its English name, the source column names that feed it (first found
    wins; matched ignoring case, spaces and full-/half-width brackets), type, Chinese title."""

    name: str
    sources: tuple[str, ...]
    type: str = "text"
    title_zh: str = ""
    required: bool = False
    personal: str | None = None  # mask kind: name, phone, id_number (geo.policy.masks)

    def __post_init__(self) -> None:
        check_identifier(self.name, "field name")
        if self.name in RESERVED:
            raise SpecError(f"field name {self.name!r} is reserved for ingest's own columns")
        if self.type not in FIELD_TYPES:
            raise SpecError(f"field {self.name}: type must be one of {FIELD_TYPES}")
        if self.personal is not None and self.personal not in MASK_KINDS:
            raise SpecError(f"field {self.name}: mask kind must be one of {MASK_KINDS}")
        if not self.sources:
            raise SpecError(f"field {self.name}: name at least one source column")


def departmental_layer(
    id: str,
    title_zh: str,
    title_en: str,
    department: str,
    description: str,
    fields: tuple[Field, ...],
    ingest: Ingest,
    sharing_level: str = "conditional",
    opening_level: str = "restricted",
    update_frequency: str = "monthly",
    internal: tuple[str, ...] = (),
    unmask: dict[str, str] | None = None,
) -> Layer:
    """A departmental layer, checked: it lives in ``layers.<id>``; its personal fields are those
    its fields declare (raw only to administrators unless ``unmask`` names roles); ``internal``
    fields are shown to administrators only."""
    check_identifier(id)
    if len(id) > MAX_LAYER_ID:
        raise SpecError(f"layer id {id!r} is longer than {MAX_LAYER_ID} characters")
    names = [f.name for f in fields]
    if len(set(names)) != len(names):
        raise SpecError(f"layer {id}: a field is declared twice")
    for name in (ingest.key, ingest.address_field, *internal):
        if name is not None and name not in names:
            raise SpecError(f"layer {id}: {name!r} is not one of its fields")
    if sharing_level not in SHARING_ZH or opening_level not in OPENING_ZH:
        raise SpecError(
            f"layer {id}: sharing level must be one of {sorted(SHARING_ZH)} and "
            f"opening level one of {sorted(OPENING_ZH)}"
        )
    unknown = set(ingest.match) - set(MATCHES)
    if unknown:
        raise SpecError(f"layer {id}: unknown match rule(s) {sorted(unknown)}")
    try:
        access = LayerAccess(
            personal={f.name: f.personal for f in fields if f.personal},
            unmask=unmask or {},
            internal=frozenset(internal),
        )
    except ValueError as exc:
        raise SpecError(f"layer {id}: {exc}") from exc
    return Layer(
        id=id,
        table=f"{SCHEMA}.{id}",
        title_zh=title_zh,
        title_en=title_en,
        department=department,
        description=description,
        sharing_level=sharing_level,
        opening_level=opening_level,
        update_frequency=update_frequency,
        source_crs=None,
        access=access,
        fields=tuple(fields),
        ingest=ingest,
    )


# --- declarations as data (TOML) ---------------------------------------------------------------

TOP_KEYS = {
    "id": str,
    "title_zh": str,
    "title_en": str,
    "department": str,
    "description": str,
    "sharing_level": str,
    "opening_level": str,
    "update_frequency": str,
    "internal": list,
    "ingest": dict,
    "fields": list,
}
INGEST_KEYS = {
    "key": str,
    "match": list,
    "address_field": str,
    "building_within_m": (int, float),
    "address_within_m": (int, float),
    "district_tolerance_m": (int, float),
    "department_aliases": list,
}
FIELD_KEYS = {
    "name": str,
    "sources": list,
    "type": str,
    "title_zh": str,
    "required": bool,
    "personal": str,
}
REQUIRED_TOP = ("id", "title_zh", "title_en", "department", "description", "fields")


def _line_of(text: str, key: str, table: str | None = None, index: int | None = None) -> int | None:
    """The line (1-based) where ``key`` is set: at the top, in ``[table]``, or in the
    ``index``-th ``[[table]]``."""
    section, seen, current = None, -1, None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[["):
            current = line.strip("[] ")
            seen = seen + 1 if current == table else seen
            section = current
            continue
        if line.startswith("["):
            section = line.strip("[] ")
            continue
        if re.match(rf"^{re.escape(key)}\s*=", line):
            if table is None and section is None:
                return number
            if table is not None and section == table and (index is None or seen == index):
                return number
    return None


def _where(origin: str, text: str, key: str, table=None, index=None) -> str:
    line = _line_of(text, key, table, index)
    return f"{origin}, line {line}" if line else origin


def _check_keys(
    data: dict, allowed: dict, origin: str, text: str, table=None, index=None, what=""
) -> None:
    for key, value in data.items():
        if key not in allowed:
            known = ", ".join(allowed)
            raise SpecError(
                f"{_where(origin, text, key, table, index)}: unknown key '{key}'{what} "
                f"(the keys are {known})"
            )
        kind = allowed[key]
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            wanted = kind.__name__ if isinstance(kind, type) else "number"
            raise SpecError(
                f"{_where(origin, text, key, table, index)}: '{key}'{what} must be a {wanted}"
            )


def parse_declaration(text: str, origin: str = "the declaration") -> Layer:
    """A departmental layer from its TOML declaration; a SpecError (400) naming the line and the
    field that is wrong when it cannot work."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = re.search(r"at line (\d+)", str(exc))
        lines = text.splitlines()
        number = int(at.group(1)) if at else 0
        shown = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        quoted = f" — `{shown[:120]}`" if shown else ""
        raise SpecError(f"{origin}: not valid TOML: {exc}{quoted} (strings need quotes)") from exc
    _check_keys(data, TOP_KEYS, origin, text)
    missing = [key for key in REQUIRED_TOP if key not in data]
    if missing:
        raise SpecError(f"{origin}: missing {', '.join(missing)}")
    ingest = data.get("ingest", {})
    _check_keys(ingest, INGEST_KEYS, origin, text, "ingest", None, " in [ingest]")
    fields = []
    for n, raw in enumerate(data["fields"]):
        name = raw.get("name", f"#{n + 1}") if isinstance(raw, dict) else f"#{n + 1}"
        what = f" of field '{name}'"
        if not isinstance(raw, dict):
            raise SpecError(f"{origin}: each [[fields]] entry is a table (field {name})")
        _check_keys(raw, FIELD_KEYS, origin, text, "fields", n, what)
        if "name" not in raw or "sources" not in raw:
            raise SpecError(f"{origin}: field {name} needs a name and its sources")
        try:
            fields.append(
                Field(
                    raw["name"],
                    tuple(raw["sources"]),
                    type=raw.get("type", "text"),
                    title_zh=raw.get("title_zh", ""),
                    required=raw.get("required", False),
                    personal=raw.get("personal"),
                )
            )
        except SpecError as exc:
            message = str(exc)
            key = next(
                (
                    k
                    for word, k in (
                        ("mask kind", "personal"),
                        ("type must", "type"),
                        ("source column", "sources"),
                    )
                    if word in message
                ),
                "name",
            )
            raise SpecError(f"{_where(origin, text, key, 'fields', n)}: {message}") from exc
    try:
        return departmental_layer(
            id=data["id"],
            title_zh=data["title_zh"],
            title_en=data["title_en"],
            department=data["department"],
            description=data["description"],
            fields=tuple(fields),
            ingest=Ingest(
                key=ingest.get("key"),
                match=tuple(ingest.get("match", ())),
                address_field=ingest.get("address_field"),
                building_within_m=float(ingest.get("building_within_m", 50.0)),
                address_within_m=float(ingest.get("address_within_m", 100.0)),
                district_tolerance_m=float(ingest.get("district_tolerance_m", 50.0)),
                department_aliases=tuple(ingest.get("department_aliases", ())),
            ),
            sharing_level=data.get("sharing_level", "conditional"),
            opening_level=data.get("opening_level", "restricted"),
            update_frequency=data.get("update_frequency", "monthly"),
            internal=tuple(data.get("internal", ())),
        )
    except SpecError as exc:
        raise SpecError(f"{origin}: {exc}") from exc
