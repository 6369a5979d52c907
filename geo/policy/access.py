"""Access rules, declared with each layer: who may see its personal fields raw, its internal
fields, and which of its rows; and who may work in the 四标四实 records workspace.

A layer's :class:`LayerAccess` is the only place its rules are written. The read plan
(:mod:`geo.policy.plan`) turns it, with a caller and a purpose, into what that caller sees, and
every read path (features, records, catalogue counts, exports, tiles) asks the plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from geo.policy.roles import ROLES, Viewer

#: scopes: every row / the viewer's own grids only
ALL, OWN = "all", "own"
MASK_KINDS = ("name", "phone", "id_number", "birth_date")


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class LayerAccess:
    """Who may see what of one layer.

    - ``personal``: personal field → mask kind (name, phone, id_number). Masked for everyone,
      except a role named in ``unmask`` that states a purpose (the read is audited): ``all`` rows,
      or only rows in the viewer's ``own`` grids.
    - ``internal``: fields shown only to ``internal_roles`` (always to administrators).
    - ``rows``: role → ``all``, ``own`` (their grids) or a CQL2 filter; roles not named get
      ``other_rows``. Administrators always see every row.
    """

    personal: Mapping[str, str] = field(default_factory=dict)
    unmask: Mapping[str, str] = field(default_factory=dict)
    internal: frozenset[str] = frozenset()
    internal_roles: frozenset[str] = frozenset()
    rows: Mapping[str, str] = field(default_factory=dict)
    other_rows: str = ALL

    def __post_init__(self) -> None:
        object.__setattr__(self, "personal", _frozen(self.personal))
        object.__setattr__(self, "unmask", _frozen(self.unmask))
        object.__setattr__(self, "rows", _frozen(self.rows))
        object.__setattr__(self, "internal", frozenset(self.internal))
        object.__setattr__(self, "internal_roles", frozenset(self.internal_roles))
        for kind in self.personal.values():
            if kind not in MASK_KINDS:
                raise ValueError(f"mask kind {kind!r} is not one of {MASK_KINDS}")
        for role in (*self.unmask, *self.rows, *self.internal_roles):
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}: the roles are {', '.join(ROLES)}")
        for scope in self.unmask.values():
            if scope not in (ALL, OWN):
                raise ValueError(f"unmask scope {scope!r} must be '{ALL}' or '{OWN}'")

    def unmask_scope(self, viewer: Viewer) -> str | None:
        """``all``, ``own`` or None: where this viewer may see personal fields raw (with a purpose)."""
        if not self.personal:
            return None
        if viewer.role == "admin":
            return ALL
        return self.unmask.get(viewer.role)

    def sees_internal(self, viewer: Viewer) -> bool:
        return viewer.role == "admin" or viewer.role in self.internal_roles

    def row_rule(self, viewer: Viewer) -> str:
        """``all``, ``own`` or a CQL2 filter on the layer's own fields."""
        if viewer.role == "admin":
            return ALL
        return self.rows.get(viewer.role, self.other_rows)

    def as_json(self) -> dict:
        """The rules as stored in the catalogue (so that every process reads the same ones)."""
        return {
            "personal": dict(self.personal),
            "unmask": dict(self.unmask),
            "internal": sorted(self.internal),
            "internal_roles": sorted(self.internal_roles),
            "rows": dict(self.rows),
            "other_rows": self.other_rows,
        }

    @classmethod
    def from_json(cls, data: Mapping | None) -> LayerAccess:
        data = data or {}
        return cls(
            personal=data.get("personal", {}),
            unmask=data.get("unmask", {}),
            internal=frozenset(data.get("internal", ())),
            internal_roles=frozenset(data.get("internal_roles", ())),
            rows=data.get("rows", {}),
            other_rows=data.get("other_rows", ALL),
        )


# --- the 四标四实 records workspace ------------------------------------------------------------

#: role → which records it may open under /records (its work list) and edit: every grid, its own
#: grids, or none. Planners and safety officers read to plan and inspect; only grid workers and
#: administrators edit. What each sees of a record (masks, rows) is the layer's read plan.
RECORD_READ_SCOPE = {"admin": ALL, "grid_worker": OWN, "planner": ALL, "safety": ALL}
RECORD_WRITE_SCOPE = {"admin": ALL, "grid_worker": OWN}
#: who approves a grid worker's pending change (the community reviewer's desk)
REVIEWERS = frozenset({"admin"})


def record_scope(viewer: Viewer, write: bool) -> str | None:
    """``all``, ``own`` (the viewer's grids) or None (no access) for the records workspace."""
    return (RECORD_WRITE_SCOPE if write else RECORD_READ_SCOPE).get(viewer.role)


def may_review(viewer: Viewer) -> bool:
    return viewer.role in REVIEWERS


def may_list(viewer: Viewer, opening_level: str) -> bool:
    """Closed layers (禁止开放) are not even listed to anonymous callers."""
    return not (viewer.anonymous and opening_level == "closed")
