"""城市体检 runs and their results: every indicator for every area of a run, kept per run so that
this year can be set beside last year. Areas are kept by code and name, not by reference: a
district re-imported (or last year's demo city loaded) leaves earlier runs readable."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import Base, id_column

#: the levels a result is given for: the administrative ladder, grids, and H3 cells
LEVELS = ("district", "street", "community", "grid", "h3_8", "h3_9")


class CheckupRun(Base):
    """One check-up: when it ran, the day its data stood for, and the settings it used."""

    __tablename__ = "checkup_runs"

    id: Mapped[int] = id_column()
    label: Mapped[str | None] = mapped_column(String(200))
    as_of: Mapped[date] = mapped_column(Date, nullable=False)
    area_code: Mapped[str | None] = mapped_column(String(12), doc="the area run for; null: all")
    district_code: Mapped[str | None] = mapped_column(String(12))
    district_name: Mapped[str | None] = mapped_column(String(100))
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    seconds: Mapped[float | None] = mapped_column(Double)
    created_by: Mapped[str | None] = mapped_column(String(64))
    settings: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    timings: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    indicators: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")


class CheckupResult(Base):
    """One indicator's value for one area in one run, against its target."""

    __tablename__ = "checkup_results"
    __table_args__ = (CheckConstraint(f"level IN {LEVELS!r}", name="level_known"),)

    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("checkup_runs.id", ondelete="CASCADE"), primary_key=True
    )
    indicator: Mapped[str] = mapped_column(String(64), primary_key=True)
    level: Mapped[str] = mapped_column(String(16), primary_key=True)
    area_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    area_name: Mapped[str | None] = mapped_column(String(100))
    value: Mapped[float | None] = mapped_column(Double)
    numerator: Mapped[float | None] = mapped_column(Double)
    denominator: Mapped[float | None] = mapped_column(Double)
    passed: Mapped[bool | None] = mapped_column(Boolean, doc="null: report only, or no value")
    basis: Mapped[str | None] = mapped_column(Text, doc="what was counted (houses or buildings)")
