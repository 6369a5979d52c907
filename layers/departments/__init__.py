"""The declared departmental layers: one small module per layer, gathered here by id.

Ingest accepts a file only for a layer declared here (or registered at run time with
:func:`register`, e.g. by a test or a deployment's own module), so that every departmental layer
has its field mapping, matching rules, personal fields and sharing levels written down in code.
"""

from __future__ import annotations

from geo.errors import NotFound
from layers.catalogue import Layer
from layers.departments import emergency_shelters, landuse_nrb

_DECLARED: dict[str, Layer] = {
    spec.id: spec for spec in (emergency_shelters.LAYER, landuse_nrb.LAYER)
}


class UnknownLayer(NotFound):
    """No departmental layer is declared under this id."""


def declared() -> list[Layer]:
    """Every declared departmental layer, by id."""
    return [_DECLARED[k] for k in sorted(_DECLARED)]


def get(layer_id: str) -> Layer:
    """The declaration of a layer, or UnknownLayer naming the layers that are declared."""
    try:
        return _DECLARED[layer_id]
    except KeyError:
        known = ", ".join(sorted(_DECLARED)) or "none"
        raise UnknownLayer(
            f"no departmental layer '{layer_id}' is declared (declared: {known}); "
            "declare it in layers/departments/ first"
        ) from None


def register(spec: Layer) -> Layer:
    """Declare a layer at run time (replacing one of the same id)."""
    _DECLARED[spec.id] = spec
    return spec


def unregister(layer_id: str) -> None:
    """Forget a run-time declaration (no effect on the database)."""
    _DECLARED.pop(layer_id, None)


def field_titles(layer_id: str) -> dict[str, str]:
    """Chinese titles of a declared layer's fields (empty for layers not declared here)."""
    spec = _DECLARED.get(layer_id)
    if spec is None:
        return {}
    return {f.name: f.title_zh for f in spec.fields if f.title_zh}
