"""The standard address library (标准地址库) and standard buildings (标准建筑物)."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo import codes
from geo.models.base import (
    Base,
    Editable,
    Verified,
    code_check,
    geometry,
    geometry_checks,
    id_column,
)

BUILDING_USES = ("residential", "commercial", "industrial", "public", "mixed", "other")
ADDRESS_LEVELS = ("road", "door", "building", "unit", "room")


class Building(Editable, Verified, Base):
    """标准建筑物: a footprint keyed by its standard building code (grid code + 4 digits)."""

    __tablename__ = "buildings"
    __table_args__ = (
        code_check("code", codes.BUILDING_CODE),
        CheckConstraint("left(code, 15) = grid_code", name="code_in_grid"),
        CheckConstraint("floors BETWEEN 1 AND 200", name="floors_range"),
        CheckConstraint("height_m > 0 AND height_m < 700", name="height_range"),
        CheckConstraint("year_built BETWEEN 1800 AND 2100", name="year_range"),
        CheckConstraint(f"use IN {BUILDING_USES!r}", name="use_known"),
        CheckConstraint(
            "(dwellings IS NULL OR dwellings >= 0) AND (residents IS NULL OR residents >= 0)",
            name="counts_range",
        ),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(CHAR(19), unique=True, nullable=False)
    name: Mapped[str | None] = mapped_column(String(200))
    floors: Mapped[int] = mapped_column(Integer, nullable=False)
    height_m: Mapped[float] = mapped_column(Numeric(6, 1), nullable=False)
    use: Mapped[str] = mapped_column(String(16), nullable=False)
    year_built: Mapped[int | None] = mapped_column(Integer)
    estate: Mapped[str | None] = mapped_column(String(100), doc="小区 (estate) name, if any")
    #: counts handed over with the building (户数, 人数), for districts without person-level
    #: records; geo.population prefers the records where they exist
    dwellings: Mapped[int | None] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POLYGON")


class Address(Editable, Verified, Base):
    """标准地址: area → road/estate → door plate → building → unit → room.

    ``code`` nests in the community's code; ``level`` says how deep the address goes and
    ``is_dwelling`` whether the leaf is a home.
    """

    __tablename__ = "addresses"
    __table_args__ = (
        code_check("code", codes.ADDRESS_CODE),
        CheckConstraint("left(code, 12) = area_code", name="code_in_area"),
        CheckConstraint(
            "grid_code IS NULL OR left(grid_code, 12) = area_code", name="grid_in_area"
        ),
        CheckConstraint(f"level IN {ADDRESS_LEVELS!r}", name="level_known"),
        CheckConstraint("length(full_name) >= 4", name="full_name_length"),
        *geometry_checks(),
        # the geocoder's indexes, one per tier (migration 0008, geo.addressing)
        Index("ix_addresses_aliases", "aliases", postgresql_using="gin"),
        Index(
            "ix_addresses_keys",
            text("onemap_address_keys(full_name, aliases)"),
            postgresql_using="gin",
        ),
        Index(
            "ix_addresses_tail",
            text("onemap_address_tail(road, door_number, estate, building_number, unit_number)"),
        ),
        Index(
            "ix_addresses_trigrams",
            text("onemap_normalise_address(full_name)"),
            postgresql_using="gin",
            postgresql_ops={"onemap_normalise_address(full_name)": "gin_trgm_ops"},
        ),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(CHAR(20), unique=True, nullable=False)
    full_name: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    aliases: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    area_code: Mapped[str] = mapped_column(
        CHAR(12), ForeignKey("admin_areas.code"), nullable=False, index=True
    )
    road: Mapped[str | None] = mapped_column(String(100), doc="街路巷")
    estate: Mapped[str | None] = mapped_column(String(100), doc="小区")
    door_number: Mapped[str | None] = mapped_column(String(20), doc="门牌号")
    building_number: Mapped[str | None] = mapped_column(String(20), doc="楼栋号")
    unit_number: Mapped[str | None] = mapped_column(String(20), doc="单元号")
    room_number: Mapped[str | None] = mapped_column(String(20), doc="户室号")
    level: Mapped[str] = mapped_column(String(10), nullable=False)
    is_dwelling: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    building_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("buildings.id", ondelete="SET NULL"), index=True
    )
    grid_code: Mapped[str | None] = mapped_column(CHAR(15), ForeignKey("grids.code"), index=True)
    geom = geometry("POINT")
