"""The four facts (四实): actual houses, residents, organisations and facilities.

Each record carries the grid it lies in (``grid_code``) so that a grid worker's patch and every
per-grid indicator is one index lookup away; its point is the authority for "inside".
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import (
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    SmallInteger,
    String,
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
from geo.policy.access import ALL, OWN, LayerAccess

HOUSE_USES = ("dwelling", "shop", "office", "factory", "warehouse", "other")
TENURES = ("owner_occupied", "rented", "vacant", "public", "other")
RESIDENCE_TYPES = ("registered", "floating", "overseas")
ORGANISATION_KINDS = (
    "enterprise",
    "government",
    "institution",
    "school",
    "hospital",
    "shop",
    "social",
    "other",
)
FACILITY_KINDS = (
    "kindergarten",
    "primary_school",
    "middle_school",
    "clinic",
    "hospital",
    "elderly_care",
    "park_entrance",
    "fire_station",
    "hydrant",
    "shelter",
    "sensor",
    "camera",
    "bus_stop",
    "market",
    "sports",
    "toilet",
    "waste_station",
    "cultural_centre",
    "street_office",
    "community_station",
)


class House(Editable, Verified, Base):
    """实有房屋: a dwelling or premises in a standard building, at a room-level address."""

    __tablename__ = "houses"
    __table_args__ = (
        CheckConstraint(f"use IN {HOUSE_USES!r}", name="use_known"),
        CheckConstraint(f"tenure IN {TENURES!r}", name="tenure_known"),
        CheckConstraint("area_m2 IS NULL OR (area_m2 > 0 AND area_m2 < 100000)", name="area_range"),
        CheckConstraint("floor BETWEEN -5 AND 200", name="floor_range"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    building_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("buildings.id"), nullable=False, index=True
    )
    address_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("addresses.id", ondelete="SET NULL"), index=True
    )
    unit_number: Mapped[str | None] = mapped_column(String(20))
    room_number: Mapped[str] = mapped_column(String(20), nullable=False)
    floor: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    area_m2: Mapped[float | None] = mapped_column(Numeric(8, 1))
    use: Mapped[str] = mapped_column(String(16), nullable=False)
    tenure: Mapped[str] = mapped_column(String(16), nullable=False)
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class Resident(Editable, Verified, Base):
    """实有人口: a person living in a house.

    ``name``, ``id_number`` and ``phone`` are personal data: masked on every read path unless the
    caller's role may see them. ``id_hash`` is a keyed hash (HMAC-SHA256) of the identity number
    for joining datasets without the number itself.
    """

    __tablename__ = "residents"
    #: names, identity numbers, phones and birth dates: raw only to the grid worker of the
    #: household's grid and to administrators, with a stated purpose; a grid worker sees the
    #: residents of their own grids only (the same on /collections as on /records)
    __access__ = LayerAccess(
        personal={
            "name": "name",
            "id_number": "id_number",
            "phone": "phone",
            "birth_date": "birth_date",
        },
        unmask={"grid_worker": OWN},
        rows={"grid_worker": OWN},
    )
    __table_args__ = (
        code_check("id_number", codes.ID_NUMBER),
        CheckConstraint(f"phone IS NULL OR phone ~ '{codes.PHONE}'", name="phone_format"),
        CheckConstraint("gender IN ('M', 'F')", name="gender_known"),
        CheckConstraint(f"residence_type IN {RESIDENCE_TYPES!r}", name="residence_type_known"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    id_number: Mapped[str] = mapped_column(CHAR(18), nullable=False, unique=True)
    id_hash: Mapped[str] = mapped_column(CHAR(64), nullable=False, index=True)
    phone: Mapped[str | None] = mapped_column(CHAR(11))
    gender: Mapped[str] = mapped_column(CHAR(1), nullable=False)
    birth_date: Mapped[date] = mapped_column(Date, nullable=False)
    residence_type: Mapped[str] = mapped_column(String(16), nullable=False)
    relation: Mapped[str | None] = mapped_column(String(16), doc="与户主关系")
    house_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("houses.id"), nullable=False, index=True
    )
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class Organisation(Editable, Verified, Base):
    """实有单位: an enterprise, office, school, shop … with its unified social credit code."""

    __tablename__ = "organisations"
    #: the legal person and contact phone: raw to the grid worker of the unit's grid and to safety
    #: officers, who call key units during inspections and 119 linkage
    __access__ = LayerAccess(
        personal={"legal_person": "name", "contact_phone": "phone"},
        unmask={"grid_worker": OWN, "safety": ALL},
    )
    __table_args__ = (
        code_check("credit_code", codes.CREDIT_CODE),
        CheckConstraint(f"kind IN {ORGANISATION_KINDS!r}", name="kind_known"),
        CheckConstraint(
            f"contact_phone IS NULL OR contact_phone ~ '{codes.PHONE}'", name="phone_format"
        ),
        CheckConstraint("employees IS NULL OR employees >= 0", name="employees_range"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    credit_code: Mapped[str] = mapped_column(CHAR(18), nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    industry: Mapped[str | None] = mapped_column(String(50))
    employees: Mapped[int | None] = mapped_column(Integer)
    legal_person: Mapped[str | None] = mapped_column(String(50), doc="法定代表人 (personal)")
    contact_phone: Mapped[str | None] = mapped_column(CHAR(11), doc="personal")
    is_key_unit: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false", doc="消防重点单位"
    )
    address_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("addresses.id", ondelete="SET NULL"), index=True
    )
    building_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("buildings.id", ondelete="SET NULL"), index=True
    )
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class Facility(Editable, Verified, Base):
    """实有设施: public service and safety facilities, by kind."""

    __tablename__ = "facilities"
    __table_args__ = (
        CheckConstraint(f"kind IN {FACILITY_KINDS!r}", name="kind_known"),
        CheckConstraint("capacity IS NULL OR capacity >= 0", name="capacity_range"),
        CheckConstraint("area_m2 IS NULL OR area_m2 >= 0", name="area_range"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    kind: Mapped[str] = mapped_column(String(24), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    capacity: Mapped[int | None] = mapped_column(Integer)
    area_m2: Mapped[float | None] = mapped_column(Numeric(12, 1))
    address_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("addresses.id", ondelete="SET NULL"), index=True
    )
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")
