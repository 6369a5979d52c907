"""The city safety map (城市安全电子一张图): hazards, inspections, sensors and their readings."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CHAR,
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from geo import codes
from geo.models.base import Base, Editable, code_check, geometry, geometry_checks, id_column
from geo.policy.access import ALL, LayerAccess

HAZARD_CATEGORIES = ("fire", "gas", "structural", "flood", "traffic", "production", "electrical")
HAZARD_STATUSES = ("open", "rectifying", "closed")
INSPECTION_SOURCES = ("leader_night", "department", "grid_patrol")
SENSOR_KINDS = ("water_level", "smoke", "gas", "temperature", "structural", "electrical")


class Hazard(Editable, Base):
    """安全隐患: found, graded 1 (most severe) to 4, to be rectified and closed by its deadline."""

    __tablename__ = "hazards"
    __table_args__ = (
        code_check("code", codes.HAZARD_CODE),
        CheckConstraint(f"category IN {HAZARD_CATEGORIES!r}", name="category_known"),
        CheckConstraint("level BETWEEN 1 AND 4", name="level_range"),
        CheckConstraint(f"status IN {HAZARD_STATUSES!r}", name="status_known"),
        CheckConstraint("deadline >= found_at", name="deadline_after_found"),
        CheckConstraint(
            "(status = 'closed') = (closed_at IS NOT NULL)", name="closed_when_closed_at"
        ),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(22), unique=True, nullable=False)
    category: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    organisation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("organisations.id", ondelete="SET NULL")
    )
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class Inspection(Editable, Base):
    """检查记录: leader night checks, department checks and grid patrols, joined to hazards."""

    __tablename__ = "inspections"
    #: the inspector's name: raw to safety officers
    __access__ = LayerAccess(personal={"inspector": "name"}, unmask={"safety": ALL})
    __table_args__ = (
        CheckConstraint(f"source IN {INSPECTION_SOURCES!r}", name="source_known"),
        CheckConstraint("result IN ('passed', 'hazard_found', 'rectified')", name="result_known"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    hazard_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("hazards.id", ondelete="SET NULL"), index=True
    )
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    inspector: Mapped[str] = mapped_column(String(50), nullable=False)
    inspected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    result: Mapped[str] = mapped_column(String(16), nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class Sensor(Editable, Base):
    """物联感知设备: water level gauges, smoke detectors … with an alarm threshold."""

    __tablename__ = "sensors"
    __table_args__ = (
        code_check("code", codes.SENSOR_CODE),
        CheckConstraint(f"kind IN {SENSOR_KINDS!r}", name="kind_known"),
        CheckConstraint("status IN ('online', 'offline', 'fault')", name="status_known"),
        *geometry_checks(),
    )

    id: Mapped[int] = id_column()
    code: Mapped[str] = mapped_column(String(14), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    unit: Mapped[str] = mapped_column(String(16), nullable=False)
    threshold: Mapped[float] = mapped_column(Double, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    installed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class SensorReading(Base):
    """传感器读数: one value per sensor per time; append-only, so no version."""

    __tablename__ = "sensor_readings"

    sensor_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sensors.id", ondelete="CASCADE"), primary_key=True
    )
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    value: Mapped[float] = mapped_column(Double, nullable=False)
