"""The declarative base and what every table shares.

Geometries are stored in EPSG:4490 with a type and SRID modifier (PostGIS refuses a wrong SRID or
type by itself), a GiST index, and named CHECK constraints for validity and non-emptiness, so that
no path (API, ingest, psql) can store a broken shape.
"""

from __future__ import annotations

from datetime import datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, CheckConstraint, DateTime, Integer, MetaData, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from geo.settings import STORAGE_SRID

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Editable:
    """Every editable record: a version for optimistic concurrency, and when it was made and changed.

    The database bumps ``version`` and ``updated_at`` itself (trigger ``onemap_touch``), so that
    every write path, not only ours, moves the version on.
    """

    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


class Verified:
    """A record a grid worker can confirm on patrol ("checked, still true", 核实): who and when,
    stamped without a new version of its content (``onemap_touch`` leaves the version alone when
    only these change)."""

    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_by: Mapped[str | None] = mapped_column(String(50))


def id_column() -> Mapped[int]:
    return mapped_column(BigInteger, primary_key=True, autoincrement=True)


def geometry(kind: str, nullable: bool = False) -> Mapped:
    """A geometry column of one type in CGCS2000 with its GiST index."""
    return mapped_column(Geometry(kind, srid=STORAGE_SRID, spatial_index=True), nullable=nullable)


def geometry_checks(column: str = "geom") -> tuple[CheckConstraint, ...]:
    """Valid and non-empty: the checks PostGIS typmods do not make."""
    return (
        CheckConstraint(f"ST_IsValid({column})", name=f"{column}_valid"),
        CheckConstraint(f"NOT ST_IsEmpty({column})", name=f"{column}_not_empty"),
    )


def code_check(column: str, pattern: str, name: str | None = None) -> CheckConstraint:
    """A code format check; the pattern comes from geo.codes."""
    return CheckConstraint(f"{column} ~ '{pattern}'", name=name or f"{column}_format")
