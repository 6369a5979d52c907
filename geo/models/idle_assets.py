"""The idle-asset investment map (存量资产招商一张图): assets and their status history."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo import codes
from geo.models.base import Base, Editable, code_check, geometry, geometry_checks, id_column
from geo.policy.access import ALL, LayerAccess

#: 行政事业单位 / 国有经营性 / 农村集体闲置 / 低效用地再开发
ASSET_CATEGORIES = ("administrative", "state_operating", "rural_collective", "inefficient_land")
#: entered → promoted publicly → under negotiation → revitalised (盘活), or withdrawn
ASSET_STATUSES = ("entered", "promoted", "negotiating", "revitalised", "withdrawn")
#: the housing-condition grades of the 房屋完损等级评定标准: 完好 / 基本完好 / 一般损坏 / 严重损坏 / 危险
BUILDING_CONDITIONS = ("intact", "sound", "damaged", "severely_damaged", "dangerous")
#: the one status the public sees: on public offer (公开推介)
PUBLIC_STATUS = "promoted"
#: what the trigram search reads: name, description and suggested use, as one text (the SQL
#: function and its index are migration 0015's)
SEARCH_TEXT = "onemap_asset_text(name, description, suggested_use)"


class Asset(Editable, Base):
    """存量资产: an idle building or parcel to be revitalised. The public sees the ones on public
    offer (``promoted``) only, without the internal fields (``reserve_price_wan``,
    ``contact_name``, ``contact_phone``, ``notes``). ``landuse_code`` is the GB/T 21010 class,
    ``condition`` the housing-condition grade; ``address_code``/``building_code`` are the
    standard address and building the asset was matched to, where it could be."""

    __tablename__ = "assets"
    #: the public sees an asset once promoted, without its internal fields; the owner's contact is
    #: raw to investment staff
    __access__ = LayerAccess(
        personal={"contact_name": "name", "contact_phone": "phone"},
        unmask={"investment": ALL},
        internal=frozenset({"reserve_price_wan", "contact_name", "contact_phone", "notes"}),
        internal_roles=frozenset({"investment"}),
        rows={"investment": ALL, "planner": ALL},
        other_rows=f"status = '{PUBLIC_STATUS}'",
    )
    __table_args__ = (
        code_check("code", codes.ASSET_CODE),
        CheckConstraint(f"category IN {ASSET_CATEGORIES!r}", name="category_known"),
        CheckConstraint(f"status IN {ASSET_STATUSES!r}", name="status_known"),
        CheckConstraint("land_area_m2 >= 0 AND floor_area_m2 >= 0", name="area_range"),
        CheckConstraint(
            "landuse_code IS NULL OR landuse_code ~ '^[0-9]{2}([0-9H][0-9])?$'",
            name="landuse_code_format",
        ),
        CheckConstraint(
            f"condition IS NULL OR condition IN {BUILDING_CONDITIONS!r}", name="condition_known"
        ),
        Index(
            "ix_assets_search",
            text(SEARCH_TEXT),
            postgresql_using="gin",
            postgresql_ops={SEARCH_TEXT: "gin_trgm_ops"},
        ),
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
    landuse_code: Mapped[str | None] = mapped_column(String(5), index=True)
    condition: Mapped[str | None] = mapped_column(String(16))
    available_from: Mapped[date | None] = mapped_column(Date)
    reserve_price_wan: Mapped[float | None] = mapped_column(Numeric(12, 1), doc="internal")
    contact_name: Mapped[str | None] = mapped_column(String(50), doc="internal, personal")
    contact_phone: Mapped[str | None] = mapped_column(CHAR(11), doc="internal, personal")
    notes: Mapped[str | None] = mapped_column(Text, doc="internal")
    page_views: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    area_code: Mapped[str] = mapped_column(CHAR(12), ForeignKey("admin_areas.code"), nullable=False)
    grid_code: Mapped[str | None] = mapped_column(CHAR(15), ForeignKey("grids.code"))
    address_code: Mapped[str | None] = mapped_column(
        CHAR(20), ForeignKey("addresses.code", ondelete="SET NULL")
    )
    building_code: Mapped[str | None] = mapped_column(
        CHAR(19), ForeignKey("buildings.code", ondelete="SET NULL")
    )
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


class AssetPhoto(Base):
    """资产照片: a photo uploaded for an asset, kept on disk under the service's photo folder
    (``stored_as``); the row says what it is and who gave it."""

    __tablename__ = "asset_photos"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    file_name: Mapped[str] = mapped_column(String(200), nullable=False)
    stored_as: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    media_type: Mapped[str] = mapped_column(String(40), nullable=False)
    bytes: Mapped[int] = mapped_column(Integer, nullable=False)
    caption: Mapped[str | None] = mapped_column(String(200))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    uploaded_by: Mapped[str] = mapped_column(String(50), nullable=False)


class AssetView(Base):
    """资产浏览量: public page views per asset, page and day; a count, never who looked."""

    __tablename__ = "asset_views"
    __table_args__ = (
        PrimaryKeyConstraint("asset_id", "day", "page"),
        CheckConstraint("views > 0", name="views_positive"),
    )

    asset_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("assets.id", ondelete="CASCADE"), nullable=False
    )
    day: Mapped[date] = mapped_column(Date, nullable=False)
    page: Mapped[str] = mapped_column(String(16), nullable=False)
    views: Mapped[int] = mapped_column(Integer, nullable=False)
