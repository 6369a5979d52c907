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
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo import codes
from geo.models.base import Base, Editable, code_check, geometry, geometry_checks, id_column
from geo.policy.access import ALL, LayerAccess

HAZARD_CATEGORIES = ("fire", "gas", "structural", "flood", "traffic", "production", "electrical")
#: the closed loop (闭环整治): reported → assigned → rectifying → verified → closed
HAZARD_STATUSES = ("reported", "assigned", "rectifying", "verified", "closed")
#: how a hazard came to be known: an inspection, a citizen's tip (随手拍), a sensor, a report
HAZARD_SOURCES = ("inspection", "tip", "sensor", "report")
#: what an inspection did with a hazard: found it, or checked it again
INSPECTION_LINKS = ("found", "rechecked")
#: the five levels of the 119 linkage: district, street/industrial park, village/community, grid,
#: key unit
DUTY_LEVELS = (1, 2, 3, 4, 5)
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
        CheckConstraint(f"source IN {HAZARD_SOURCES!r}", name="source_known"),
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
    department: Mapped[str | None] = mapped_column(String(50), doc="责任部门")
    source: Mapped[str] = mapped_column(String(16), nullable=False, server_default="inspection")
    reported_by: Mapped[str | None] = mapped_column(String(50))
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")


class HazardStep(Base):
    """隐患整治环节: each step of a hazard through its loop, with who, when and the evidence
    (notes, photo files); append-only."""

    __tablename__ = "hazard_steps"
    __table_args__ = (CheckConstraint(f"status IN {HAZARD_STATUSES!r}", name="status_known"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    hazard_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("hazards.id", ondelete="CASCADE"), nullable=False, index=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    changed_by: Mapped[str] = mapped_column(String(50), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")


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
    organisation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("organisations.id", ondelete="SET NULL"), doc="the key unit checked"
    )
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code"), nullable=False, index=True
    )
    geom = geometry("POINT")
    route = geometry("LINESTRING", nullable=True)


class InspectionHazard(Base):
    """检查—隐患: the hazards an inspection found or checked again."""

    __tablename__ = "inspection_hazards"
    __table_args__ = (
        PrimaryKeyConstraint("inspection_id", "hazard_id"),
        CheckConstraint(f"relation IN {INSPECTION_LINKS!r}", name="relation_known"),
    )

    inspection_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("inspections.id", ondelete="CASCADE"), nullable=False
    )
    hazard_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("hazards.id", ondelete="CASCADE"), nullable=False, index=True
    )
    relation: Mapped[str] = mapped_column(String(12), nullable=False)


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
    """传感器读数: one value per sensor per time; append-only, so no version. Partitioned by
    month of ``observed_at`` (migration 0018, geo.safety.partitions); the partitions themselves
    are storage the models do not declare. No foreign key to sensors: checked once per batch or
    statement, and deleted with their sensor, by triggers (migration 0018 says why)."""

    __tablename__ = "sensor_readings"
    __table_args__ = {"postgresql_partition_by": "RANGE (observed_at)"}

    sensor_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    value: Mapped[float] = mapped_column(Double, nullable=False)


class SensorWarning(Base):
    """预警: a sensor over its threshold, from the first reading over it until a reading back
    under it; one open warning per sensor at a time (while the condition lasts)."""

    __tablename__ = "sensor_warnings"
    __table_args__ = (
        Index(
            "ux_sensor_warnings_open",
            "sensor_id",
            unique=True,
            postgresql_where=text("cleared_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    sensor_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sensors.id", ondelete="CASCADE"), nullable=False, index=True
    )
    threshold: Mapped[float] = mapped_column(Double, nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    first_value: Mapped[float] = mapped_column(Double, nullable=False)
    peak_value: Mapped[float] = mapped_column(Double, nullable=False)
    last_value: Mapped[float] = mapped_column(Double, nullable=False)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    readings: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DutyContact(Base):
    """值班联系人: who answers for an area, a grid or a key unit when the 119 linkage calls;
    ``unit_code`` is the area's or grid's code, or the key unit's credit code."""

    __tablename__ = "duty_contacts"
    #: names and phones raw to safety officers only
    __access__ = LayerAccess(personal={"name": "name", "phone": "phone"}, unmask={"safety": ALL})
    __table_args__ = (CheckConstraint("level BETWEEN 1 AND 5", name="level_range"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    level: Mapped[int] = mapped_column(SmallInteger, nullable=False)
    unit_code: Mapped[str] = mapped_column(String(22), nullable=False, index=True)
    post: Mapped[str] = mapped_column(String(50), nullable=False)
    name: Mapped[str] = mapped_column(String(50), nullable=False)
    phone: Mapped[str] = mapped_column(CHAR(11), nullable=False)


class FireAlarm(Base):
    """119 警情: an alarm as received, and the five-level response given to it, kept whole."""

    __tablename__ = "fire_alarms"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    received_by: Mapped[str] = mapped_column(String(50), nullable=False)
    address: Mapped[str | None] = mapped_column(Text)
    response: Mapped[dict] = mapped_column(JSONB, nullable=False)
    seconds: Mapped[float] = mapped_column(Double, nullable=False)
    geom = geometry("POINT")
