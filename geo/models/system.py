"""The layer catalogue (一张表), users and roles, tokens, and the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Boolean,
    CheckConstraint,
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

from geo.models.base import Base, Editable, geometry
from geo.policy.roles import ROLES

#: 国发〔2016〕51号: between departments
SHARING_LEVELS = ("unconditional", "conditional", "none")
#: to the public
OPENING_LEVELS = ("open", "restricted", "closed")


class CatalogueEntry(Editable, Base):
    """资源目录条目: one layer of the one map, whoever owns it ("one data, one source")."""

    __tablename__ = "layer_catalogue"
    __table_args__ = (
        CheckConstraint("id ~ '^[a-z][a-z0-9_]{1,62}$'", name="id_format"),
        CheckConstraint(f"sharing_level IN {SHARING_LEVELS!r}", name="sharing_known"),
        CheckConstraint(f"opening_level IN {OPENING_LEVELS!r}", name="opening_known"),
    )

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(63), nullable=False, unique=True)
    title_zh: Mapped[str] = mapped_column(String(100), nullable=False)
    title_en: Mapped[str] = mapped_column(String(100), nullable=False)
    department: Mapped[str] = mapped_column(String(100), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    geometry_type: Mapped[str | None] = mapped_column(String(32))
    source_crs: Mapped[str | None] = mapped_column(String(64))
    update_frequency: Mapped[str | None] = mapped_column(String(32))
    last_loaded: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feature_count: Mapped[int | None] = mapped_column(BigInteger)
    extent: Mapped[list[float] | None] = mapped_column(ARRAY(Double), doc="minx, miny, maxx, maxy")
    fields: Mapped[list[dict]] = mapped_column(JSONB, nullable=False, server_default="[]")
    access: Mapped[dict] = mapped_column(
        JSONB,
        nullable=False,
        server_default="{}",
        doc="the layer's access rules (geo.policy.access.LayerAccess.as_json)",
    )
    time_field: Mapped[str | None] = mapped_column(String(63))
    sharing_level: Mapped[str] = mapped_column(String(16), nullable=False)
    opening_level: Mapped[str] = mapped_column(String(16), nullable=False)


class User(Editable, Base):
    """A person who signs in, with one role; grid workers are bound to grids (``user_grids``),
    and anyone may be bound to one district (``district_code``)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN {ROLES!r}", name="role_known"),
        CheckConstraint("username ~ '^[a-z0-9_.-]{2,50}$'", name="username_format"),
        CheckConstraint("district_code ~ '^[0-9]{6}$'", name="district_code_format"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(50), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(100), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    #: argon2 hash of the password (never the password); NULL: signs in with tokens only
    password_hash: Mapped[str | None] = mapped_column(Text)
    password_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: failed sign-ins in a row, and until when the account is locked after too many
    failed_logins: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: the one district this user works in (its 6-digit code); NULL: the whole city
    district_code: Mapped[str | None] = mapped_column(CHAR(6))


class UserGrid(Base):
    """The grids a grid worker is responsible for."""

    __tablename__ = "user_grids"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    grid_code: Mapped[str] = mapped_column(
        CHAR(15), ForeignKey("grids.code", ondelete="CASCADE"), primary_key=True
    )


class ApiToken(Base):
    """A bearer token, stored only as its hash; revocable and expiring."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    token_hash: Mapped[str] = mapped_column(CHAR(64), nullable=False, unique=True)
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """审计日志: every write and every unmasked read of personal data. Append-only: the database
    refuses UPDATE and DELETE on it (trigger ``onemap_append_only``)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), index=True
    )
    actor: Mapped[str] = mapped_column(String(50), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    target_type: Mapped[str] = mapped_column(String(63), nullable=False)
    target_id: Mapped[str | None] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default="{}")
    status: Mapped[int | None] = mapped_column(Integer)


class Patrol(Base):
    """巡查: a grid worker's round of their grid, with its track, the buildings visited and the
    records verified, changed and the hazards reported on the way."""

    __tablename__ = "patrols"
    __table_args__ = (
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="ends_after"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(50), nullable=False, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    grid_codes: Mapped[list[str]] = mapped_column(
        ARRAY(String(15)), nullable=False, server_default="{}"
    )
    buildings: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, server_default="{}"
    )
    verified: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")
    changed: Mapped[list] = mapped_column(JSONB, nullable=False, server_default="[]")
    hazards: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, server_default="{}"
    )
    track = geometry("LINESTRING", nullable=True)


class Verification(Base):
    """核实记录: one "checked, still true" of a record, kept so that freshness can be told for
    any past week (the record itself holds only its latest)."""

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    record_type: Mapped[str] = mapped_column(String(20), nullable=False)
    record_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    grid_code: Mapped[str | None] = mapped_column(CHAR(15), index=True)
    verified_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, index=True
    )
    verified_by: Mapped[str] = mapped_column(String(50), nullable=False)
    patrol_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("patrols.id", ondelete="SET NULL"), index=True
    )
