"""The idle-asset investment map (存量资产招商一张图): assets and their status history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo import codes
from geo.models.base import Base, Editable, code_check, geometry, geometry_checks, id_column
from geo.policy.access import ALL, LayerAccess

#: 行政事业单位 / 国有经营性 / 农村集体闲置 / 低效用地再开发
ASSET_CATEGORIES = ("administrative", "state_operating", "rural_collective", "inefficient_land")
#: entered → promoted publicly → under negotiation → revitalised (盘活), or withdrawn
ASSET_STATUSES = ("entered", "promoted", "negotiating", "revitalised", "withdrawn")


class Asset(Editable, Base):
    """存量资产: an idle building or parcel to be revitalised. The public sees promoted ones only,
    without the internal fields (``reserve_price_wan``, ``contact_name``, ``contact_phone``, ``notes``)."""

    __tablename__ = "assets"
    #: the public sees an asset once promoted, without its internal fields; the owner's contact is
    #: raw to investment staff
    __access__ = LayerAccess(
        personal={"contact_name": "name", "contact_phone": "phone"},
        unmask={"investment": ALL},
        internal=frozenset({"reserve_price_wan", "contact_name", "contact_phone", "notes"}),
        internal_roles=frozenset({"investment"}),
        rows={"investment": ALL, "planner": ALL},
        other_rows="status IN ('promoted', 'negotiating', 'revitalised')",
    )
    __table_args__ = (
        code_check("code", codes.ASSET_CODE),
        CheckConstraint(f"category IN {ASSET_CATEGORIES!r}", name="category_known"),
        CheckConstraint(f"status IN {ASSET_STATUSES!r}", name="status_known"),
        CheckConstraint("land_area_m2 >= 0 AND floor_area_m2 >= 0", name="area_range"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(12), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    category: Mapped[str] = mapped_column(String(20), nullable=False, index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    owner: Mapped[str] = mapped_column(String(200), nullable=False)
    land_area_m2: Mapped[float] = mapped_column(Numeric(12, 1), nullable=False)
    floor_area_m2: Mapped[float] = mapped_column(Numeric(12, 1), nullable=False)
    suggested_use: Mapped[str | None] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    reserve_price_wan: Mapped[float | None] = mapped_column(Numeric(12, 1), doc="internal")
    contact_name: Mapped[str | None] = mapped_column(String(50), doc="internal, personal")
    contact_phone: Mapped[str | None] = mapped_column(CHAR(11), doc="internal, personal")
    notes: Mapped[str | None] = mapped_column(Text, doc="internal")
    page_views: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    area_code: Mapped[str] = mapped_column(CHAR(12), ForeignKey("admin_areas.code"), nullable=False)
    grid_code: Mapped[str | None] = mapped_column(CHAR(15), ForeignKey("grids.code"))
    geom = geometry("MULTIPOLYGON")


class AssetStatusChange(Base):
    """资产状态变更: each step of an asset through to revitalised; append-only."""

    __tablename__ = "asset_status_history"
    __table_args__ = (CheckConstraint(f"status IN {ASSET_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    changed_by: Mapped[str] = mapped_column(String(50), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
