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
from dataclasses import dataclass

from layers.catalogue import OPENING_ZH, SHARING_ZH, LayerSpec

#: layer ids become table names: checked, then quoted wherever they are used in SQL
LAYER_ID = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
#: room left in a 63-byte PostgreSQL name for the ``__new`` table and ``_geom_idx`` index names
MAX_LAYER_ID = 40
FIELD_TYPES = ("text", "integer", "number", "date")
MATCHES = ("grid", "building", "address")
MASK_KINDS = ("name", "phone", "id_number")
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


class SpecError(ValueError):
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
    personal: str | None = None  # mask kind: name, phone, id_number (geo.privacy)

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


@dataclass(frozen=True)
class DepartmentLayer:
    """A departmental layer: where it comes from, what it holds, how it is matched and shared.

    ``key`` names the field that identifies a feature in the department's own system (duplicates
    are rejected); ``match`` lists the standard data each feature is joined to: ``grid`` (the grid
    containing the feature's point on surface), ``building`` (the nearest standard building within
    ``building_within_m``), ``address`` (the address text matched to the standard address library,
    else the nearest standard address within ``address_within_m``). ``address_field`` names the
    field holding the address text. Features farther than ``district_tolerance_m`` outside the
    district are rejected.
    """

    id: str
    title_zh: str
    title_en: str
    department: str
    description: str
    fields: tuple[Field, ...]
    key: str | None = None
    match: tuple[str, ...] = ()
    address_field: str | None = None
    building_within_m: float = 50.0
    address_within_m: float = 100.0
    district_tolerance_m: float = 50.0
    sharing_level: str = "conditional"
    opening_level: str = "restricted"
    update_frequency: str = "monthly"
    department_aliases: tuple[str, ...] = ()
    internal: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_identifier(self.id)
        if len(self.id) > MAX_LAYER_ID:
            raise SpecError(f"layer id {self.id!r} is longer than {MAX_LAYER_ID} characters")
        names = [f.name for f in self.fields]
        if len(set(names)) != len(names):
            raise SpecError(f"layer {self.id}: a field is declared twice")
        for name in (self.key, self.address_field):
            if name is not None and name not in names:
                raise SpecError(f"layer {self.id}: {name!r} is not one of its fields")
        if self.sharing_level not in SHARING_ZH or self.opening_level not in OPENING_ZH:
            raise SpecError(
                f"layer {self.id}: sharing level must be one of {sorted(SHARING_ZH)} and "
                f"opening level one of {sorted(OPENING_ZH)}"
            )
        unknown = set(self.match) - set(MATCHES)
        if unknown:
            raise SpecError(f"layer {self.id}: unknown match rule(s) {sorted(unknown)}")

    @property
    def table(self) -> str:
        """Schema-qualified table name, unquoted (the catalogue's ``table_name``)."""
        return f"layers.{self.id}"

    @property
    def personal(self) -> dict[str, str]:
        return {f.name: f.personal for f in self.fields if f.personal}

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def owned_by(self, department: str) -> bool:
        """Whether ``--dept`` names this layer's department (its name, part of it, or an alias)."""
        wanted = re.sub(r"\s+", "", department or "").casefold()
        if len(wanted) < 2:
            return False
        known = [self.department, *self.department_aliases]
        return any(
            wanted == re.sub(r"\s+", "", k).casefold() or wanted in re.sub(r"\s+", "", k).casefold()
            for k in known
        )

    def catalogue_spec(self, source_crs: str) -> LayerSpec:
        """The catalogue entry this layer registers when it is loaded."""
        return LayerSpec(
            id=self.id,
            table=self.table,
            title_zh=self.title_zh,
            title_en=self.title_en,
            department=self.department,
            description=self.description,
            sharing_level=self.sharing_level,
            opening_level=self.opening_level,
            update_frequency=self.update_frequency,
            source_crs=source_crs,
            personal=self.personal,
            internal=self.internal,
        )
