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
