"""The records' memory: every version kept (history), changes awaiting review, sync receipts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from geo.models.base import Base

RECORD_ACTIONS = ("create", "replace", "update", "delete", "restore")


class RecordVersion(Base):
    """记录历史: one row per change of a 四标四实 record, with the state before and after.

    ``version`` is the record's version after the change (for a delete, the last version).
    Append-only, like the audit log."""

    __tablename__ = "record_history"
    __table_args__ = (
        CheckConstraint(f"action IN {RECORD_ACTIONS!r}", name="action_known"),
        Index("ix_record_history_record", "record_type", "record_id", "version"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    record_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    actor: Mapped[str] = mapped_column(String(50), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)
    changed: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    review_id: Mapped[int | None] = mapped_column(BigInteger)


class RecordReview(Base):
    """待审核变更: a grid worker's change to a resident or house, applied once a reviewer approves."""

    __tablename__ = "record_reviews"
    __table_args__ = (
        CheckConstraint(f"action IN {RECORD_ACTIONS!r}", name="action_known"),
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status_known"),
        Index("ix_record_reviews_status", "status", "record_type"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    record_type: Mapped[str] = mapped_column(String(32), nullable=False)
    record_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    base_version: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict] = mapped_column(JSONB, nullable=False)
    grid_code: Mapped[str | None] = mapped_column(String(15))
    submitted_by: Mapped[str] = mapped_column(String(50), nullable=False)
    submitted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    reviewed_by: Mapped[str | None] = mapped_column(String(50))
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    note: Mapped[str | None] = mapped_column(Text)
    result_version: Mapped[int | None] = mapped_column(Integer)


class SyncReceipt(Base):
    """离线同步回执: the outcome of each offline edit, by the client's own id, so a replay is harmless."""

    __tablename__ = "sync_receipts"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    result: Mapped[dict] = mapped_column(JSONB, nullable=False)
    at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
