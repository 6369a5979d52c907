"""record history, reviews of grid workers' changes, and offline-sync receipts

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_history",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=50), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("changed", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("review_id", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "action IN ('create', 'replace', 'update', 'delete', 'restore')",
            name=op.f("ck_record_history_action_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_history")),
    )
    op.create_index(
        "ix_record_history_record", "record_history", ["record_type", "record_id", "version"]
    )
    op.create_table(
        "record_reviews",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.BigInteger(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("submitted_by", sa.String(length=50), nullable=False),
        sa.Column(
            "submitted_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("reviewed_by", sa.String(length=50), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("result_version", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "action IN ('create', 'replace', 'update', 'delete', 'restore')",
            name=op.f("ck_record_reviews_action_known"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')",
            name=op.f("ck_record_reviews_status_known"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_reviews")),
    )
    op.create_index("ix_record_reviews_status", "record_reviews", ["status", "record_type"])
    op.create_table(
        "sync_receipts",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_sync_receipts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "client_id", name=op.f("pk_sync_receipts")),
    )
    op.execute(
        "CREATE TRIGGER record_history_append_only BEFORE UPDATE OR DELETE ON record_history "
        "FOR EACH ROW EXECUTE FUNCTION onemap_append_only()"
    )


def downgrade() -> None:
    op.drop_table("sync_receipts")
    op.drop_index("ix_record_reviews_status", table_name="record_reviews")
    op.drop_table("record_reviews")
    op.drop_index("ix_record_history_record", table_name="record_history")
    op.drop_table("record_history")
