"""The read plan: for one layer, one caller and one purpose, exactly what that caller sees.

Every read path asks :func:`plan_read` and obeys the answer; none decides on its own:
- which columns are served (bookkeeping such as ``id_hash`` never; internal fields only to the
  roles the layer names);
- which personal fields are masked, and how, and which are shown raw: only with a stated purpose,
  only to a role the layer allows, and for a grid worker only in their own grids (the read is then
  audited by the path that serves it);
- which rows may be seen (all, the caller's own grids, or a CQL2 filter on the layer's fields),
  and in which district: a caller bound to a district (or narrowing a request to one) reads only
  that district's rows of every layer that can say where its rows are;
- an *audience key*: two callers with the same key are served the same bytes, so a cache (tiles,
  exports) may key on it and never hand one audience's answer to another.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from geo.errors import BadRequest, Forbidden
from geo.policy.access import ALL, OWN, LayerAccess
from geo.policy.masks import mask_value
from geo.policy.roles import Viewer

#: fields no one outside the database needs: keyed hashes
NEVER_SERVED = frozenset({"id_hash"})
MAX_PURPOSE = 500
GRID_FIELD = "grid_code"


@dataclass(frozen=True)
class ReadPlan:
    layer: str
    viewer: Viewer
    columns: tuple[str, ...]  # fields served, in the layer's order (geometry included)
    hidden: frozenset[str]  # fields never served to this caller
    personal: Mapping[str, str]  # served personal field → mask kind
    raw: frozenset[str]  # personal fields shown unmasked ...
    raw_grids: frozenset[str] | None  # ... only in rows of these grids (None: in every row)
    rows: str  # 'all', 'own' or a CQL2 filter
    purpose: str | None
    audience: str
    district: str | None = None  # rows confined to this district (None: the whole city)

    @property
    def audited(self) -> bool:
        """Raw personal data is served: the path must write an audit entry."""
        return bool(self.raw)

    @property
    def masked(self) -> frozenset[str]:
        """Personal fields masked in every row."""
        return frozenset(self.personal) - self.raw

    @property
    def row_grids(self) -> frozenset[str] | None:
        """The grids rows are confined to (None: not confined by grid)."""
        return self.viewer.grids if self.rows == OWN else None

    @property
    def row_filter(self) -> str | None:
        """A CQL2 filter rows must pass (None: none)."""
        return None if self.rows in (ALL, OWN) else self.rows

    @property
    def restricted(self) -> bool:
        """Some rows are withheld from this caller: counts and extents must be recomputed."""
        return self.rows != ALL or self.district is not None

    def mask_value(self, name: str, value, grid: str | None = None):
        """One value as this caller may see it."""
        kind = self.personal.get(name)
        if kind is None or (
            name in self.raw and (self.raw_grids is None or grid in self.raw_grids)
        ):
            return value
        return mask_value(kind, value)

    def properties(self, props: Mapping) -> dict:
        """A row's properties as this caller may see them: hidden fields dropped, masks applied."""
        grid = props.get(GRID_FIELD)
        return {k: self.mask_value(k, v, grid) for k, v in props.items() if k not in self.hidden}


def plan_read(
    layer: str,
    access: LayerAccess,
    fields: Iterable[str],
    viewer: Viewer,
    purpose: str | None = None,
) -> ReadPlan:
    """What ``viewer`` sees of ``layer`` (whose fields are ``fields``) for ``purpose``.

    A purpose on a layer without personal fields is ignored; a blank or over-long one is a 400; a
    purpose from a role that may not see the layer's personal data raw is a 403."""
    fields = list(fields)
    hidden = set(NEVER_SERVED)
    if not access.sees_internal(viewer):
        hidden |= access.internal
    columns = tuple(f for f in fields if f not in hidden)
    personal = {f: k for f, k in access.personal.items() if f in columns}
    raw: frozenset[str] = frozenset()
    raw_grids: frozenset[str] | None = None
    if purpose is not None and personal:
        if not purpose.strip() or len(purpose) > MAX_PURPOSE:
            raise BadRequest(
                f"purpose must say, in under {MAX_PURPOSE} characters, why you need the personal data"
            )
        scope = access.unmask_scope(viewer)
        if scope is None:
            raise Forbidden(f"your role '{viewer.role}' may not see personal data of {layer}")
        raw = frozenset(personal)
        raw_grids = frozenset(viewer.grids) if scope == OWN else None
    rows = access.row_rule(viewer)
    if rows == OWN and GRID_FIELD not in fields:
        raise ValueError(f"layer {layer} has no {GRID_FIELD}: its rows cannot be confined to grids")
    key = json.dumps(
        [
            layer,
            columns,
            sorted(personal.items()),
            sorted(raw),
            sorted(raw_grids) if raw_grids is not None else None,
            rows,
            sorted(viewer.grids) if rows == OWN else None,
        ]
        # a district's audience is its own (a whole-city caller's key is what it always was)
        + ([viewer.district] if viewer.district else []),
        ensure_ascii=False,
    )
    return ReadPlan(
        layer=layer,
        viewer=viewer,
        columns=columns,
        hidden=frozenset(hidden),
        personal=personal,
        raw=raw,
        raw_grids=raw_grids,
        rows=rows,
        purpose=purpose if raw else None,
        audience=hashlib.sha256(key.encode()).hexdigest()[:32],
        district=viewer.district,
    )
