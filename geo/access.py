"""Who is asking, and what they may see: the read side of the policy.

A ``Viewer`` is the caller (anonymous is ``public``). Personal fields are masked unless the
viewer's role may see that layer's personal data *and* the caller states a purpose (the unmasked
read is then audited by the caller of :func:`unmasked_fields`). Internal fields are hidden from
roles outside the owning concern; some layers show the public only part of their rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("public", "investment", "planner", "grid_worker", "safety", "admin")

#: role → layers whose personal fields that role may see unmasked (with a purpose)
PERSONAL_ACCESS: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "grid_worker": frozenset({"residents", "organisations", "houses"}),
    "safety": frozenset({"organisations", "inspections"}),
    "investment": frozenset({"assets"}),
}
#: role → layers whose internal fields that role may see
INTERNAL_ACCESS: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "investment": frozenset({"assets"}),
}
#: layer → CQL2 filter limiting the rows roles other than those listed see
ROW_RULES: dict[str, tuple[frozenset[str], str]] = {
    # the public sees assets once promoted publicly, never those merely entered or withdrawn
    "assets": (
        frozenset({"admin", "investment", "planner"}),
        "status IN ('promoted', 'negotiating', 'revitalised')",
    ),
}


@dataclass(frozen=True)
class Viewer:
    username: str = "anonymous"
    role: str = "public"
    grids: frozenset[str] = field(default_factory=frozenset)

    @property
    def anonymous(self) -> bool:
        return self.role == "public"


ANONYMOUS = Viewer()


def _allowed(table: dict[str, frozenset[str]], role: str, layer: str) -> bool:
    granted = table.get(role, frozenset())
    return "*" in granted or layer in granted


def may_see_personal(viewer: Viewer, layer: str) -> bool:
    return _allowed(PERSONAL_ACCESS, viewer.role, layer)


def may_see_internal(viewer: Viewer, layer: str) -> bool:
    return _allowed(INTERNAL_ACCESS, viewer.role, layer)


def may_list(viewer: Viewer, opening_level: str) -> bool:
    """Closed layers (禁止开放) are not even listed to anonymous callers."""
    return not (viewer.anonymous and opening_level == "closed")


def row_rule(viewer: Viewer, layer: str) -> str | None:
    rule = ROW_RULES.get(layer)
    if rule is None or viewer.role in rule[0]:
        return None
    return rule[1]


# --- the records (四标四实) write path --------------------------------------------------------

RECORD_TYPES = ("addresses", "buildings", "houses", "residents", "organisations", "facilities")

#: role → which records it may read and write under /records: every grid, its own grids, or none.
#: Planners and safety officers read (masked) to plan and inspect; only grid workers and
#: administrators edit. Investment staff and the public have no business with household records.
RECORD_READ_SCOPE = {"admin": "all", "grid_worker": "own", "planner": "all", "safety": "all"}
RECORD_WRITE_SCOPE = {"admin": "all", "grid_worker": "own"}
#: who approves a grid worker's pending change (the community reviewer's desk)
REVIEWERS = frozenset({"admin"})
#: role → record types whose personal fields it may read unmasked (with a purpose, audited)
RECORD_UNMASK = {
    "admin": frozenset(RECORD_TYPES),
    "grid_worker": frozenset({"residents", "organisations"}),
}


def record_scope(viewer: Viewer, write: bool) -> str | None:
    """'all', 'own' (the viewer's grids) or None (no access) for the records API."""
    return (RECORD_WRITE_SCOPE if write else RECORD_READ_SCOPE).get(viewer.role)


def may_unmask_record(viewer: Viewer, record_type: str) -> bool:
    return record_type in RECORD_UNMASK.get(viewer.role, frozenset())


def may_review(viewer: Viewer) -> bool:
    return viewer.role in REVIEWERS
