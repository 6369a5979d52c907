"""The roles, defined once, and the caller: a :class:`Viewer` (anonymous is ``public``)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: every role of the service; what each may do is declared with each layer (geo.policy.access)
ROLES = ("public", "investment", "planner", "grid_worker", "safety", "admin")
ROLE_ZH = {
    "public": "公众",
    "investment": "招商人员",
    "planner": "规划人员",
    "grid_worker": "网格员",
    "safety": "安全员",
    "admin": "管理员",
}


@dataclass(frozen=True)
class Viewer:
    """Who is asking: a user name, a role, and for a grid worker the grids they are bound to."""

    username: str = "anonymous"
    role: str = "public"
    grids: frozenset[str] = field(default_factory=frozenset)

    @property
    def anonymous(self) -> bool:
        return self.role == "public"


ANONYMOUS = Viewer()
