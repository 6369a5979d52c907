"""Administrative areas (行政区划) and standard grids (标准基础网格)."""

from __future__ import annotations

from sqlalchemy import CHAR, CheckConstraint, ForeignKey, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from geo import codes
from geo.models.base import Base, Editable, code_check, geometry, geometry_checks, id_column

AREA_LEVELS = {1: "district", 2: "street", 3: "community"}


class AdminArea(Editable, Base):
    """行政区划: district (区) → street/town (街道/镇) → community/village (社区/村).

    ``code`` is the 12-digit statistical division code; ``level`` 1, 2, 3 for the three tiers;
    ``kind`` says street or town, community or village, as the name does.
    """

    __tablename__ = "admin_areas"
    __table_args__ = (
        code_check("code", codes.AREA_CODE),
        CheckConstraint("level BETWEEN 1 AND 3", name="level_range"),
        CheckConstraint(
            "kind IN ('district', 'street', 'town', 'community', 'village')", name="kind_known"
        ),
        CheckConstraint(
            "(level = 1 AND parent_code IS NULL) OR (level > 1 AND parent_code IS NOT NULL)",
            name="parent_by_level",
        ),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(CHAR(12), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    parent_code: Mapped[str | None] = mapped_column(
        CHAR(12), ForeignKey("admin_areas.code"), index=True
    )
    geom = geometry("MULTIPOLYGON")


class Grid(Editable, Base):
    """标准基础网格: the grid worker's patch; its code extends its community's code."""

    __tablename__ = "grids"
    __table_args__ = (
        code_check("code", codes.GRID_CODE),
        CheckConstraint("left(code, 12) = community_code", name="code_in_community"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(CHAR(15), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    community_code: Mapped[str] = mapped_column(
        CHAR(12), ForeignKey("admin_areas.code"), nullable=False, index=True
    )
    households: Mapped[int | None] = mapped_column(Integer)
    geom = geometry("MULTIPOLYGON")
