"""The declared departmental layers, declared as data: a TOML file per layer.

The layers shipped with the service are the ``*.toml`` files beside this module; a district
declares its own at run time (``onemap layers declare FILE``, ``POST /layers``), kept in
``ingest.declarations`` so that every process reads the same. Ingest accepts a file only for a
declared layer, so every departmental layer has its field mapping, matching rules, personal
fields and sharing levels written down; a bad declaration is refused naming the line and field.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

from geo.errors import NotFound
from geo.policy import audit
from geo.policy.roles import Viewer
from layers import catalogue, tables
from layers.catalogue import BASE_LAYERS, Layer
from layers.declaration import SpecError, parse_declaration

HERE = Path(__file__).resolve().parent


def _shipped() -> dict[str, Layer]:
    out = {}
    for path in sorted(HERE.glob("*.toml")):
        layer = parse_declaration(path.read_text(encoding="utf-8"), path.name)
        out[layer.id] = layer
    return out


_SHIPPED: dict[str, Layer] = _shipped()
_DECLARED: dict[str, Layer] = dict(_SHIPPED)
#: ids no district declaration may take (so a lookup of these never needs the database)
_RESERVED = frozenset(b.id for b in BASE_LAYERS) | frozenset(_SHIPPED)


class UnknownLayer(NotFound):
    """No departmental layer is declared under this id."""


def _stored(conn: Connection | None, layer_id: str | None = None) -> dict[str, Layer]:
    """District declarations from the database: all, or only ``layer_id``'s (one row, one parse)."""
    if conn is None:
        return {}
    exists = conn.execute(text("SELECT to_regclass('ingest.declarations') IS NOT NULL")).scalar()
    if not exists:  # a database migrated only part way (the migration tests)
        return {}
    only = " WHERE id = :id" if layer_id is not None else ""
    rows = conn.execute(
        text(f"SELECT id, source FROM ingest.declarations{only} ORDER BY id"), {"id": layer_id}
    ).all()
    return {row.id: parse_declaration(row.source, f"declaration {row.id}") for row in rows}


def find(layer_id: str, conn: Connection | None) -> Layer | None:
    """One layer's declaration: this process's first, else the database's (base layers never)."""
    if layer_id in _DECLARED:
        return _DECLARED[layer_id]
    if layer_id in _RESERVED:
        return None
    return _stored(conn, layer_id).get(layer_id)


def declared(conn: Connection | None = None) -> list[Layer]:
    """Every declared departmental layer, by id (shipped, registered, and stored if ``conn``)."""
    every = _stored(conn) | _DECLARED
    return [every[k] for k in sorted(every)]


def get(layer_id: str, conn: Connection | None = None) -> Layer:
    """The declaration of a layer, or UnknownLayer naming the layers that are declared."""
    spec = find(layer_id, conn)
    if spec is None:
        known = ", ".join(layer.id for layer in declared(conn)) or "none"
        raise UnknownLayer(
            f"no departmental layer '{layer_id}' is declared (declared: {known}); "
            "declare it first: onemap layers declare FILE.toml"
        )
    return spec


def register(spec: Layer) -> Layer:
    """Declare a layer for this process only (tests; a deployment declares with :func:`declare`)."""
    _DECLARED[spec.id] = spec
    return spec


def unregister(layer_id: str) -> None:
    """Forget a process-only declaration (no effect on the database)."""
    _DECLARED.pop(layer_id, None)


def declare(conn: Connection, source: str, origin: str, viewer: Viewer) -> Layer:
    """Declare (or re-declare) a departmental layer from its TOML text, for every process: kept in
    the database, listed in the catalogue at once (an empty layer until its first ingest), and
    audited. A SpecError names the line and field of what cannot work."""
    layer = parse_declaration(source, origin)
    if layer.id in _RESERVED:
        raise SpecError(
            f"{origin}: '{layer.id}' is a layer of the service itself: choose another id"
        )
    owner = tables.catalogue_owner(conn, layer.id)
    if owner is not None and owner != layer.table:
        raise SpecError(f"{origin}: '{layer.id}' already names table {owner}: choose another id")
    conn.execute(
        text("""INSERT INTO ingest.declarations (id, source, declared_by) VALUES (:id, :s, :u)
                ON CONFLICT (id) DO UPDATE SET source = EXCLUDED.source,
                    declared_by = EXCLUDED.declared_by, declared_at = now()"""),
        {"id": layer.id, "s": source, "u": viewer.username},
    )
    if tables.count(conn, layer.id) is None:  # nothing loaded yet: an empty layer, listed
        tables.lock(conn, layer.id)
        tables.create_new(conn, layer, "GEOMETRY")
        tables.index_new(conn, layer)
        tables.swap(conn, layer.id)
    catalogue.register(conn, layer)
    catalogue.refresh(conn, layer.id)
    audit.record(conn, viewer, "declare", "layer", layer.id, detail={"fields": len(layer.fields)})
    return layer


def field_titles(layer_id: str, conn: Connection | None = None) -> dict[str, str]:
    """Chinese titles of a declared layer's fields (empty for layers not declared here)."""
    spec = find(layer_id, conn)
    if spec is None:
        return {}
    return {f.name: f.title_zh for f in spec.fields if f.title_zh}
