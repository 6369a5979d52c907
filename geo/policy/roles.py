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
    """Who is asking: a user name, a role, for a grid worker the grids they are bound to, and the
    one district (6-digit code) they read in: the district a user is bound to, or the one a
    whole-city caller narrowed this request to (``?district=``); None: the whole city."""

    username: str = "anonymous"
    role: str = "public"
    grids: frozenset[str] = field(default_factory=frozenset)
    district: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.role == "public"


ANONYMOUS = Viewer()
